"""Prometheus metric definitions for the API and the indexer shards.

Why one module: the Grafana dashboards, the alert rules and the Prometheus-adapter rules in
``helm/vdup`` and ``deploy/`` name these series, and ``tests/deploy`` checks every name they use
against :data:`ALL_METRIC_NAMES`. Defining the metrics here, and nowhere else, keeps the code and
the deployment from drifting apart.

Why a private registry: the objects are registered on :data:`REGISTRY`, not on prometheus-client's
global default, so importing this module has no side effect on other registries, tests can read a
fresh value per process, and a service exposes exactly these series
(``prometheus_client.generate_latest(REGISTRY)`` or ``make_asgi_app(registry=REGISTRY)``).

Label cardinality is bounded on purpose: no video ids, URLs, hosts or API keys ever become label
values. The allowed values of each label are listed in the constants below; the ``route`` label is
the route *template* (``/videos/{video_id}``), never the raw path; ``shard`` is the shard id (the
StatefulSet pod name, so at most ``indexer.replicas`` values).

All durations are in seconds (Prometheus base unit); bucket edges are chosen per metric to span
the latencies that stage shows on the reference machine (2 cores; figures:
docs/benchmarks.md#design-choices-measured).

Exported sample names (what a scrape shows and what PromQL can select) differ from the object
names: a counter ``x`` is exported as ``x_total`` (and ``x_created``), a histogram ``h`` as
``h_bucket``, ``h_sum``, ``h_count`` (and ``h_created``); gauges keep their name.
:data:`ALL_METRIC_NAMES` lists the exported names.

The API and the indexer import the same module, so both registries hold every definition; a
labelled metric shows no series until a label set is first used, so the indexer's scrape only
carries the API's few unlabelled series (at zero).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
# The standard process_* series (CPU seconds, resident memory, open fds) that the global default
# registry would carry; the dashboards plot them per pod. Linux only, and not in ALL_METRIC_NAMES.
ProcessCollector(registry=REGISTRY)

# --- allowed label values (bounded cardinality) -------------------------------------------------

#: Pipeline stages of one check or upload, in order (label ``stage``).
STAGES: tuple[str, ...] = ("download", "decode", "extract", "search", "align", "decide", "store")
#: How a duplicate was recognised (label ``path``): identical bytes, visual frames, or visual
#: frames confirmed by the audio track.
DUPLICATE_PATHS: tuple[str, ...] = ("exact", "visual", "visual_audio")
#: Remote dependencies of the API (label ``backend``).
BACKENDS: tuple[str, ...] = ("triton", "indexer")
#: HTTP status classes (label ``status_class``).
STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: Error causes (label ``cause``): the ``code`` of a ``vdup.errors.VdupError`` subclass
#: (``bad_media``, ``media_too_large``, ``fetch_refused``, ``fetch_failed``, ``not_found``, ...)
#: or ``internal`` for anything unexpected. Never a free-form message.
INTERNAL_ERROR_CAUSE = "internal"

# --- bucket edges (seconds) ---------------------------------------------------------------------

#: Whole HTTP requests: a check downloads, decodes and searches (0.05-30 s); list/get are ms.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
#: Pipeline stages: decide/align take microseconds-milliseconds, download up to tens of seconds.
STAGE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: One call from the API to Triton or a shard: ms on a healthy cluster, seconds when queueing.
BACKEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: One FAISS search on one shard: sub-millisecond on small shards, tens of ms on large ones.
SEARCH_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
#: Adding one video's descriptors to a shard, including the durable WAL append (fsync).
ADD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Writing a full shard snapshot (write, fsync, rename): seconds to minutes with shard size.
SNAPSHOT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# --- API ----------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "vdup_http_requests",
    "HTTP requests answered by the API, by route template, method and status class.",
    ["route", "method", "status_class"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "vdup_http_request_duration_seconds",
    "Time from request received to response sent, by route template.",
    ["route"],
    buckets=HTTP_BUCKETS,
    registry=REGISTRY,
)
STAGE_DURATION = Histogram(
    "vdup_stage_duration_seconds",
    "Time spent in one pipeline stage of a check or upload (see STAGES).",
    ["stage"],
    buckets=STAGE_BUCKETS,
    registry=REGISTRY,
)
VIDEOS_CHECKED = Counter(
    "vdup_videos_checked",
    "Videos run through the duplicate check (fetched by link or uploaded).",
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "vdup_duplicates",
    "Checks answered is_duplicate=true, by the path that recognised the copy (see DUPLICATE_PATHS).",
    ["path"],
    registry=REGISTRY,
)
DOWNLOAD_BYTES = Counter(
    "vdup_download_bytes",
    "Bytes of video downloaded from links.",
    registry=REGISTRY,
)
INFLIGHT_REQUESTS = Gauge(
    "vdup_inflight_requests",
    "Requests being processed right now (compare with VDUP_MAX_CONCURRENCY).",
    registry=REGISTRY,
)
ERRORS = Counter(
    "vdup_errors",
    "Requests that failed, by cause: a domain error code or 'internal'.",
    ["cause"],
    registry=REGISTRY,
)
BACKEND_REQUEST_DURATION = Histogram(
    "vdup_backend_request_duration_seconds",
    "Duration of one call from the API to a backend (see BACKENDS), by operation.",
    ["backend", "op"],
    buckets=BACKEND_BUCKETS,
    registry=REGISTRY,
)
BACKEND_FAILURES = Counter(
    "vdup_backend_failures",
    "Calls from the API to a backend that failed (error, timeout or unavailable), by operation.",
    ["backend", "op"],
    registry=REGISTRY,
)

# --- indexer shard ------------------------------------------------------------------------------

SHARD_VECTORS = Gauge(
    "vdup_shard_vectors",
    "Descriptor vectors held by the shard's FAISS index.",
    ["shard"],
    registry=REGISTRY,
)
SHARD_VIDEOS = Gauge(
    "vdup_shard_videos",
    "Videos held by the shard.",
    ["shard"],
    registry=REGISTRY,
)
SHARD_SEARCH_DURATION = Histogram(
    "vdup_shard_search_duration_seconds",
    "Duration of one top-k search on the shard.",
    ["shard"],
    buckets=SEARCH_BUCKETS,
    registry=REGISTRY,
)
SHARD_ADD_DURATION = Histogram(
    "vdup_shard_add_duration_seconds",
    "Duration of adding one video to the shard, durable write included.",
    ["shard"],
    buckets=ADD_BUCKETS,
    registry=REGISTRY,
)
SHARD_SNAPSHOT_AGE = Gauge(
    "vdup_shard_snapshot_age_seconds",
    "Seconds since the shard's last completed snapshot (updated at scrape time or periodically).",
    ["shard"],
    registry=REGISTRY,
)
SHARD_SNAPSHOT_DURATION = Histogram(
    "vdup_shard_snapshot_duration_seconds",
    "Duration of writing one complete snapshot of the shard.",
    ["shard"],
    buckets=SNAPSHOT_BUCKETS,
    registry=REGISTRY,
)
SHARD_WAL_BYTES = Gauge(
    "vdup_shard_wal_bytes",
    "Bytes in the shard's write-ahead log since the last snapshot.",
    ["shard"],
    registry=REGISTRY,
)

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


#: The vdup metric objects defined above (the process collector is not one of them).
VDUP_METRICS: tuple[Counter | Gauge | Histogram, ...] = (
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    STAGE_DURATION,
    VIDEOS_CHECKED,
    DUPLICATES,
    DOWNLOAD_BYTES,
    INFLIGHT_REQUESTS,
    ERRORS,
    BACKEND_REQUEST_DURATION,
    BACKEND_FAILURES,
    SHARD_VECTORS,
    SHARD_VIDEOS,
    SHARD_SEARCH_DURATION,
    SHARD_ADD_DURATION,
    SHARD_SNAPSHOT_AGE,
    SHARD_SNAPSHOT_DURATION,
    SHARD_WAL_BYTES,
)


def _exported_names(metrics: tuple[Counter | Gauge | Histogram, ...]) -> frozenset[str]:
    """Sample names a scrape can show for ``metrics``, derived from each family's type."""
    names: set[str] = set()
    for metric in metrics:
        for family in metric.describe():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return frozenset(names)


#: Every sample name the vdup metrics export, suffixes included (``vdup_http_requests_total``,
#: ``vdup_stage_duration_seconds_bucket``, ``vdup_shard_vectors``, ...). It does not depend on
#: which label sets have been used yet, nor on the platform.
ALL_METRIC_NAMES: frozenset[str] = _exported_names(VDUP_METRICS)
