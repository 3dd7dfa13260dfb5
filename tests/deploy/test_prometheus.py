"""The alert rules (promtool check rules + promtool test rules), their copy in the chart, and the
Prometheus-adapter rules behind the HPA metrics: every expression parses and names only metrics
that exist."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .conftest import CHART, ROOT, run, tool
from .promql import KNOWN_METRIC_NAMES, metric_names, promtool_parse

RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules.test.yaml"
ADAPTER = ROOT / "deploy" / "prometheus-adapter" / "values.yaml"
REQUIRED_ALERTS = {
    "VdupApiHighErrorRate",
    "VdupApiHighLatency",
    "VdupIndexerShardDown",
    "VdupTritonQueueTimeHigh",
}


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_check_rules() -> None:
    result = run([tool("promtool"), "check", "rules", RULES])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests() -> None:
    result = run([tool("promtool"), "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_alerts_exist_and_are_documented() -> None:
    rules = {r["alert"]: r for r in _rules() if "alert" in r}
    assert REQUIRED_ALERTS <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule.get("for"), f"{name} fires on a single evaluation"


def test_rules_use_known_metrics() -> None:
    for rule in _rules():
        unknown = metric_names(rule["expr"]) - KNOWN_METRIC_NAMES
        assert not unknown, (
            f"{rule.get('alert', rule.get('record'))} uses unknown metrics {unknown}"
        )


def test_chart_copy_of_rules_is_identical() -> None:
    copy = CHART / "files" / "prometheus-rules.yaml"
    assert copy.read_text() == RULES.read_text(), (
        "run tools/render-k8s.sh to refresh the chart's copy"
    )


def _adapter_queries() -> dict[str, str]:
    """metricsQuery of each adapter rule, with the adapter's template placeholders filled in."""
    rules = yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]
    out = {}
    for rule in rules:
        series = re.match(r"^\s*([A-Za-z_:][\w:]*)", rule["seriesQuery"]).group(1)
        query = (
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'namespace="vdup", pod=~"a|b"')
            .replace("<<.GroupBy>>", "pod")
        )
        out[rule["name"]["as"]] = query
    return out


def test_adapter_queries_parse_and_use_known_metrics(tmp_path: Path) -> None:
    queries = _adapter_queries()
    assert set(queries) == {
        "vdup_triton_queue_duration_us_per_request",
        "vdup_http_requests_per_second",
    }
    result = promtool_parse(tool("promtool"), queries, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, query in queries.items():
        unknown = metric_names(query) - KNOWN_METRIC_NAMES
        assert not unknown, f"{name} uses unknown metrics {unknown}"


def test_adapter_queue_time_is_a_ratio_of_sums() -> None:
    query = " ".join(_adapter_queries()["vdup_triton_queue_duration_us_per_request"].split())
    assert "avg" not in query, "an average of per-model ratios weighs idle models like busy ones"
    numerator, denominator = query.split(" / ", 1)
    assert re.fullmatch(
        r"sum\(rate\(nv_inference_queue_duration_us\{[^}]*\}\[2m\]\)\) by \(pod\)", numerator
    ), numerator
    assert re.fullmatch(
        r"clamp_min\(sum\(rate\(nv_inference_request_success\{[^}]*\}\[2m\]\)\) by \(pod\), [0-9.e-]+\)",
        denominator,
    ), denominator
