"""The HTTP API end to end: a real loopback file server, the real fetcher, models and catalog."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from support.fileserver import serve_files
from vdup.api.app import create_app
from vdup.settings import Settings


@pytest.fixture(scope="module")
def served(videos):
    files = {f"/v/{name}.mp4": data for name, data in videos.items()}
    files["/v/not-a-video.mp4"] = b"hello, I am text" * 100
    with serve_files(files) as s:
        yield s


@pytest.fixture(scope="module")
def file_server(served):
    return f"{served.base}/v"


def make_client(tmp_path, **overrides) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", fetch_allow=["127.0.0.1"], **overrides)
    return TestClient(create_app(settings), raise_server_exceptions=False)


def test_check_by_link_then_a_copy_names_its_original(tmp_path, file_server):
    with make_client(tmp_path) as client:
        first = client.post("/check-video-duplicate", json={"link": f"{file_server}/orig.mp4"})
        assert first.status_code == 200, first.text
        assert first.json()["is_duplicate"] is False and first.json()["uuid"] == "orig"
        copy = client.post("/check-video-duplicate", json={"url": f"{file_server}/flip.mp4"})
        body = copy.json()
        assert body["is_duplicate"] is True and body["duplicate_for"] == "orig"
        assert body["uuid"] == "flip" and 0 < body["score"] <= 1
        video = client.get("/videos/flip").json()
        assert video["root_id"] == "orig" and video["is_duplicate"] is True
        listed = client.get("/videos", params={"limit": 10}).json()
        assert {v["video_id"] for v in listed["videos"]} == {"orig", "flip"}
        assert client.delete("/videos/flip").status_code == 204
        assert client.get("/videos/flip").status_code == 404


def test_upload_and_restart_keep_the_catalog(tmp_path, videos):
    with make_client(tmp_path) as client:
        r = client.post(
            "/videos", files={"file": ("a.mp4", videos["orig"], "video/mp4")}, data={"uuid": "u-1"}
        )
        assert r.status_code == 200 and r.json()["uuid"] == "u-1"
    with make_client(tmp_path) as client:
        r = client.post("/videos", files={"file": ("b.mp4", videos["trim_crop"], "video/mp4")})
        assert r.json()["is_duplicate"] is True and r.json()["duplicate_for"] == "u-1"
        assert r.json()["uuid"] == "b"


def test_bad_media_gets_a_4xx_with_a_message_and_nothing_is_added(tmp_path, file_server):
    with make_client(tmp_path) as client:
        r = client.post("/check-video-duplicate", json={"link": f"{file_server}/not-a-video.mp4"})
        assert r.status_code == 422 and "video" in r.json()["detail"]
        r = client.post("/videos", files={"file": ("x.mp4", b"", "video/mp4")})
        assert r.status_code == 422 and "empty" in r.json()["detail"]
        assert client.get("/videos").json()["videos"] == []
        missing = client.post("/check-video-duplicate", json={"link": f"{file_server}/nope.mp4"})
        assert missing.status_code == 502 and "404" in missing.json()["detail"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({}, "link"),
        ({"link": "http://a/x.mp4", "url": "http://b/y.mp4"}, "disagree"),
        ({"link": "http://a/x.mp4", "uuid": "bad id!"}, "uuid"),
        ({"link": 5}, "link"),
    ],
)
def test_invalid_bodies_get_a_clear_422(tmp_path, body, fragment):
    with make_client(tmp_path) as client:
        r = client.post("/check-video-duplicate", json=body)
        assert r.status_code == 422 and fragment in r.json()["detail"]


def test_a_link_to_a_refused_address_is_not_fetched(tmp_path, file_server, served):
    served.seen.clear()
    settings = Settings(data_dir=tmp_path / "data")  # loopback not allow-listed
    with TestClient(create_app(settings)) as client:
        r = client.post("/check-video-duplicate", json={"link": f"{file_server}/orig.mp4"})
        assert r.status_code in (400, 403) and "127.0.0.1" in r.json()["detail"]
        r = client.post("/check-video-duplicate", json={"link": "ftp://example.com/v.mp4"})
        assert r.status_code == 400
    assert served.seen == []


def test_api_keys_guard_the_api_but_not_health(tmp_path, videos):
    with make_client(tmp_path, api_keys=["k-123"]) as client:
        files = {"file": ("a.mp4", videos["orig"], "video/mp4")}
        assert client.post("/videos", files=files).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert client.post("/videos", files=files, headers=bad).status_code == 401
        good = {"Authorization": "Bearer k-123"}
        assert client.post("/videos", files=files, headers=good).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_past_its_concurrency_a_replica_answers_429_with_retry_after(tmp_path, videos):
    with make_client(tmp_path, max_concurrency=1) as client:
        slots = client.app.state.vdup.slots
        client.portal.call(slots.acquire)  # one check in flight
        try:
            r = client.post("/videos", files={"file": ("a.mp4", videos["orig"], "video/mp4")})
            assert r.status_code == 429 and r.headers["Retry-After"]
        finally:
            slots.release()
        r = client.post("/videos", files={"file": ("a.mp4", videos["orig"], "video/mp4")})
        assert r.status_code == 200


def test_metrics_count_checks_stages_and_duplicates(tmp_path, videos):
    with make_client(tmp_path) as client:
        for name in ("orig", "flip"):
            client.post("/videos", files={"file": (f"{name}.mp4", videos[name], "video/mp4")})
        text = client.get("/metrics").text
    assert 'vdup_http_requests_total{method="POST",route="/videos",status_class="2xx"}' in text
    assert "vdup_videos_checked_total" in text
    assert 'vdup_duplicates_total{path="visual"}' in text
    assert 'vdup_stage_duration_seconds_count{stage="extract"}' in text
    assert '"orig"' not in text and "orig.mp4" not in text  # no ids or names in labels


def test_openapi_docs_are_served(tmp_path):
    with make_client(tmp_path) as client:
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert "/check-video-duplicate" in paths and "/videos/{video_id}" in paths


def test_one_check_is_one_trace_with_its_stages_as_children(tmp_path, file_server):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from vdup.tracing import setup_tracing

    exporter = InMemorySpanExporter()
    setup_tracing("vdup-test", processor=SimpleSpanProcessor(exporter))
    with make_client(tmp_path) as client:
        client.post("/check-video-duplicate", json={"link": f"{file_server}/orig_b.mp4"})
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["check"]
    for child in ("download", "extract", "search", "align_decide", "store"):
        assert spans[child].context.trace_id == root.context.trace_id
        assert spans[child].parent.span_id == root.context.span_id, child


def test_a_check_past_its_deadline_is_a_503_and_retrying_the_uuid_gets_the_result(tmp_path, videos):
    import time

    with make_client(tmp_path, check_deadline_s=0.001) as client:
        files = {"file": ("late.mp4", videos["orig"], "video/mp4")}
        r = client.post("/videos", files=files)
        assert r.status_code == 503 and r.headers["Retry-After"] == "10"
        assert "did not finish" in r.json()["detail"]
        for _ in range(300):  # the check goes on in the background and is stored
            if client.get("/videos/late").status_code == 200:
                break
            time.sleep(0.1)
        client.app.state.vdup.settings.check_deadline_s = 60.0
        again = client.post("/videos", files={"file": ("late.mp4", videos["flip"], "video/mp4")})
        assert again.status_code == 200 and again.json()["already_known"] is True
