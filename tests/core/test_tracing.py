"""Tracing across the tiers: one check through the API and two real shards is one
trace, and each shard's server span is a child of the API's call span for that shard.

The shards run in this process (uvicorn on loopback ports, in threads), so their spans reach the
same in-memory exporter as the API's; the context still crosses a real HTTP hop, carried only by
the ``traceparent`` header.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from support.fileserver import serve_files
from support.media import make_video
from vdup.api.app import create_app
from vdup.indexer.server import create_app as create_shard_app
from vdup.indexer.settings import ShardSettings
from vdup.runtime import build_checker
from vdup.settings import Settings
from vdup.tracing import setup_tracing

pytestmark = pytest.mark.slow  # shard processes

#: What the API opens inside one check (vdup.tracing's docstring), in order.
STAGE_SPANS = ("download", "extract", "search", "align_decide", "store")


@contextmanager
def shard_in_thread(i: int, data_dir) -> Iterator[str]:
    """Shard ``i`` (id ``shard-<i>``) served by uvicorn on an ephemeral loopback port in a
    thread; yields its URL and stops it (lifespan included) on exit."""
    app = create_shard_app(ShardSettings(data_dir=data_dir, shard_id=f"shard-{i}"))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, ws="none", log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name=f"shard-{i}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, f"shard-{i} did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span that ends during the test (from any thread of this process)."""
    exporter = InMemorySpanExporter()
    setup_tracing("vdup-test", processor=SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def _trace_of(
    exporter: InMemorySpanExporter, trace_id: int, timeout_s: float = 5.0
) -> list[ReadableSpan]:
    """The spans of one trace, once there are as many shard spans as shard calls (or after
    ``timeout_s``): a shard's server span ends as its response is sent, which can be a moment
    after the client has read it."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        calls = sum(s.name.startswith("indexer ") for s in found)
        served = sum(s.name.startswith("shard.") for s in found)
        if served >= calls or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_one_check_is_one_trace_across_the_api_and_the_shards(tmp_path, spans, extractor):
    files = {"/v/orig.mp4": make_video(1), "/v/flip.mp4": make_video(1, hflip=True, audio_seed=21)}
    with (
        serve_files(files) as served,
        shard_in_thread(0, tmp_path / "shard-0") as s0,
        shard_in_thread(1, tmp_path / "shard-1") as s1,
    ):
        settings = Settings(
            data_dir=tmp_path / "api", fetch_allow=["127.0.0.1"], indexer_urls=[s0, s1]
        )
        checker = build_checker(settings, extractor)
        try:
            with TestClient(create_app(settings, checker=checker)) as client:
                first = client.post(
                    "/check-video-duplicate", json={"link": f"{served.base}/v/orig.mp4"}
                )
                assert first.status_code == 200 and not first.json()["is_duplicate"], first.text
                copy = client.post(
                    "/check-video-duplicate", json={"link": f"{served.base}/v/flip.mp4"}
                )
                assert copy.status_code == 200, copy.text
                assert copy.json()["duplicate_for"] == "orig"
        finally:
            checker.catalog.close()

    checks = [s for s in spans.get_finished_spans() if s.name == "check"]
    assert len(checks) == 2 and checks[0].context.trace_id != checks[1].context.trace_id
    check = checks[1]
    trace = _trace_of(spans, check.context.trace_id)
    by_id = {s.context.span_id: s for s in trace}
    names = [s.name for s in trace]

    # One tree: a single root (FastAPI's request span, or "check" itself), every other span's
    # parent in this trace, the shards' spans included.
    assert len([s for s in trace if s.parent is None]) == 1, names
    assert all(s.parent.span_id in by_id for s in trace if s.parent is not None), names
    for name in STAGE_SPANS:
        stage = [s for s in trace if s.name == name]
        assert len(stage) == 1, (name, names)
        assert stage[0].parent.span_id == check.context.span_id, name

    # Search: one call span per shard under "search", each with that shard's server span below.
    # Store (a duplicate is added as it is, no settlement): one add on the video's owner shard.
    stage = {s.name: s.context.span_id for s in trace if s.name in STAGE_SPANS}
    expect = {
        "search": ("indexer search", "shard.search", 2),
        "store": ("indexer add", "shard.add", 1),
    }
    for parent_stage, (call_name, server_name, count) in expect.items():
        calls = [s for s in trace if s.name == call_name]
        assert len(calls) == count and all(
            c.parent.span_id == stage[parent_stage] for c in calls
        ), names
        for call in calls:
            served_by = [s for s in trace if s.parent and s.parent.span_id == call.context.span_id]
            assert [s.name for s in served_by] == [server_name], names
            server = served_by[0]
            assert server.kind is SpanKind.SERVER
            assert server.attributes["vdup.shard"] == f"shard-{call.attributes['shard']}"
            assert server.attributes["http.response.status_code"] in (200, 201)
    searched = [s for s in trace if s.name == "shard.search"]
    assert all(s.attributes["vdup.query_rows"] > 0 for s in searched)
    assert sum(s.attributes["vdup.candidates"] for s in searched) >= 1
    assert [s for s in trace if s.name == "shard.add"][0].attributes["vdup.rows"] > 0
