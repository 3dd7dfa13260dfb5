"""Grafana dashboards: valid JSON with the expected structure, every PromQL expression parses
(promtool, after substituting Grafana variables) and names only metrics that exist (vdup.metrics,
Triton's, or standard ones)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import CHART, tool
from .promql import (
    KNOWN_METRIC_NAMES,
    label_values_metric,
    metric_names,
    promtool_parse,
    substitute_grafana_variables,
)

DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _exprs(dashboard: dict[str, Any]) -> dict[str, str]:
    """{where: PromQL} for every panel target and every query variable of a dashboard."""
    out = {}
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            out[f'panel {panel["id"]} "{panel["title"]}" {target["refId"]}'] = target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            selector = label_values_metric(query)
            out[f"variable {var['name']}"] = selector if selector is not None else query
    return out


def test_the_three_dashboards_exist() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "vdup-api.json",
        "vdup-indexer.json",
        "vdup-triton.json",
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] == path.stem and dashboard["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in _panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']} has no query"
            assert panel["datasource"]["uid"] == "${datasource}"
            for target in panel["targets"]:
                used = {
                    v
                    for v in variables
                    if f"${v}" in target["expr"] or f"${{{v}}}" in target["expr"]
                }
                assert "namespace" in used, f"{panel['title']}: not filtered by $namespace"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_exprs_parse(path: Path, tmp_path: Path) -> None:
    exprs = {
        k: substitute_grafana_variables(v) for k, v in _exprs(json.loads(path.read_text())).items()
    }
    result = promtool_parse(tool("promtool"), exprs, tmp_path)
    assert result.returncode == 0, f"{path.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_metrics_exist(path: Path) -> None:
    unknown = {}
    for where, expr in _exprs(json.loads(path.read_text())).items():
        names = metric_names(substitute_grafana_variables(expr))
        assert names, f"{where}: no metric found in {expr!r}"
        if names - KNOWN_METRIC_NAMES:
            unknown[where] = sorted(names - KNOWN_METRIC_NAMES)
    assert not unknown, f"{path.name} uses metrics that nothing exports: {unknown}"


def test_dashboards_cover_the_issue() -> None:
    """The panels issue 5 asks for, by the metrics they need."""
    used = {
        p.name: set().union(
            *(
                metric_names(substitute_grafana_variables(e))
                for e in _exprs(json.loads(p.read_text())).values()
            )
        )
        for p in DASHBOARDS
    }
    assert {
        "vdup_videos_checked_total",
        "vdup_duplicates_total",
        "vdup_stage_duration_seconds_bucket",
        "vdup_errors_total",
        "vdup_http_requests_total",
    } <= used["vdup-api.json"]
    assert {
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_success",
        "nv_inference_request_failure",
    } <= used["vdup-triton.json"]
    assert {
        "vdup_shard_vectors",
        "vdup_shard_search_duration_seconds_bucket",
        "vdup_shard_snapshot_age_seconds",
    } <= used["vdup-indexer.json"]
