"""vdup.metrics (issue 6): the names, types and labels that dashboards, alerts and the adapter
rely on, registered on the module's own registry with bounded labels. Needs no tools."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import Counter, Gauge, Histogram

from vdup import metrics

EXPECTED: dict[str, tuple[type, tuple[str, ...]]] = {
    "vdup_http_requests": (Counter, ("route", "method", "status_class")),
    "vdup_http_request_duration_seconds": (Histogram, ("route",)),
    "vdup_stage_duration_seconds": (Histogram, ("stage",)),
    "vdup_videos_checked": (Counter, ()),
    "vdup_duplicates": (Counter, ("path",)),
    "vdup_download_bytes": (Counter, ()),
    "vdup_inflight_requests": (Gauge, ()),
    "vdup_errors": (Counter, ("cause",)),
    "vdup_backend_request_duration_seconds": (Histogram, ("backend", "op")),
    "vdup_backend_failures": (Counter, ("backend", "op")),
    "vdup_shard_vectors": (Gauge, ("shard",)),
    "vdup_shard_videos": (Gauge, ("shard",)),
    "vdup_shard_search_duration_seconds": (Histogram, ("shard",)),
    "vdup_shard_add_duration_seconds": (Histogram, ("shard",)),
    "vdup_shard_snapshot_age_seconds": (Gauge, ("shard",)),
    "vdup_shard_snapshot_duration_seconds": (Histogram, ("shard",)),
    "vdup_shard_wal_bytes": (Gauge, ("shard",)),
}
UNBOUNDED_LABELS = {
    "id",
    "video_id",
    "url",
    "link",
    "host",
    "ip",
    "user",
    "api_key",
    "path_raw",
    "pod",
}


def _by_name() -> dict[str, object]:
    return {m._name: m for m in metrics.VDUP_METRICS}


def test_definitions() -> None:
    found = _by_name()
    assert set(found) == set(EXPECTED)
    for name, (kind, labels) in EXPECTED.items():
        metric = found[name]
        assert isinstance(metric, kind), name
        assert tuple(metric._labelnames) == labels, name
        assert not set(labels) & UNBOUNDED_LABELS, name


def test_exported_names_include_suffixes() -> None:
    names = metrics.ALL_METRIC_NAMES
    assert {
        "vdup_http_requests_total",
        "vdup_http_request_duration_seconds_bucket",
        "vdup_http_request_duration_seconds_sum",
        "vdup_http_request_duration_seconds_count",
        "vdup_inflight_requests",
        "vdup_shard_vectors",
        "vdup_videos_checked_total",
    } <= names
    assert "vdup_http_requests" not in names and "vdup_stage_duration_seconds" not in names
    assert all(n.startswith("vdup_") for n in names)


def test_registered_on_the_private_registry_only() -> None:
    assert isinstance(metrics.REGISTRY, prometheus_client.CollectorRegistry)
    assert metrics.REGISTRY is not prometheus_client.REGISTRY
    default = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "vdup_" not in default
    families = {f.name for f in metrics.REGISTRY.collect()}
    assert {"vdup_http_requests", "vdup_shard_vectors"} <= families


def test_a_scrape_shows_exactly_the_declared_names() -> None:
    """Every declared name appears in a scrape once a label set exists, and nothing else does.
    Children are created at zero and removed again: no value of the shared objects changes."""
    scraped: set[str] = set()
    for metric in metrics.VDUP_METRICS:
        values = ["x"] * len(metric._labelnames)
        if values:
            metric.labels(*values)
        try:
            scraped |= {s.name for family in metric.collect() for s in family.samples}
        finally:
            if values:
                metric.remove(*values)
    assert scraped <= metrics.ALL_METRIC_NAMES
    assert {n for n in metrics.ALL_METRIC_NAMES if not n.endswith("_created")} <= scraped


@pytest.mark.parametrize(
    "buckets",
    [
        metrics.HTTP_BUCKETS,
        metrics.STAGE_BUCKETS,
        metrics.BACKEND_BUCKETS,
        metrics.SEARCH_BUCKETS,
        metrics.ADD_BUCKETS,
        metrics.SNAPSHOT_BUCKETS,
    ],
)
def test_buckets_are_increasing_seconds(buckets: tuple[float, ...]) -> None:
    assert list(buckets) == sorted(set(buckets)) and buckets[0] > 0 and len(buckets) >= 8
