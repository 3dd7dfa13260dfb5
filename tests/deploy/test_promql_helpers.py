"""The PromQL metric-name tokenizer used by the dashboard and rule checks (no tools needed)."""

from __future__ import annotations

import pytest

from .promql import label_values_metric, metric_names, substitute_grafana_variables


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum(rate(vdup_http_requests_total{job="vdup-api", status_class="5xx"}[5m]))',
            {"vdup_http_requests_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (stage, le) (rate(vdup_stage_duration_seconds_bucket[5m])))",
            {"vdup_stage_duration_seconds_bucket"},
        ),
        (
            "sum by (pod) (rate(a_total[2m])) / clamp_min(sum by (pod) (rate(b_total[2m])), 1e-3) / 1000 > 50",
            {"a_total", "b_total"},
        ),
        ('up{job="x"} == 0 and on (pod) other_metric offset 5m', {"up", "other_metric"}),
        ('label_replace(m1, "dst", "$1", "src", "(.*)") or vector(0)', {"m1"}),
        ("max(vdup_shard_vectors) / min(vdup_shard_vectors) * 6 * 3600", {"vdup_shard_vectors"}),
        ('rate(x[5m:1m]) + y_bucket{le="+Inf"} + .5 + 0x1f', {"x", "y_bucket"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_grafana_variables_are_substituted() -> None:
    expr = 'rate(m{ns="$namespace", shard=~"${shard}"}[$__rate_interval]) offset $__interval'
    assert substitute_grafana_variables(expr) == 'rate(m{ns="x", shard=~"x"}[5m]) offset 1m'


def test_label_values_query() -> None:
    assert label_values_metric('label_values(up{job="a"}, namespace)') == 'up{job="a"}'
    assert label_values_metric("sum(up)") is None
