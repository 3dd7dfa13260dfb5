"""Hostile uploads through the HTTP API: every file of the malformed-media corpus
(``tools/make_bad_media.py``) is a 4xx with a JSON message, never a 5xx; nothing is added; the
process keeps serving; and its memory stays bounded while it refuses them again and again."""

from __future__ import annotations

import gc
import os
import threading
import time
import warnings

import pytest
from fastapi.testclient import TestClient

from support.fileserver import serve_files
from tools import make_bad_media as bad
from vdup.api.app import create_app
from vdup.settings import Settings

STATUS = {bad.BAD: 422, bad.TOO_LARGE: 413}
#: Growth of the resident set allowed while the whole corpus is refused once more, MiB. Before
#: the decoder held at most ``max_sampled_frames`` frames, one file alone took 2.9 GB.
RSS_GROWTH_MIB = 150
#: Highest resident set allowed at any moment of that pass, above the level before it, MiB.
RSS_PEAK_MIB = 400


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return {name: data for name, (data, _) in bad.corpus().items()}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("bad") / "data", fetch_allow=["127.0.0.1"])
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def upload(client: TestClient, name: str, data: bytes):
    return client.post("/videos", files={"file": (name, data, "video/mp4")})


def assert_refused(response, case: bad.Case) -> None:
    assert response.status_code == STATUS[case.error], (case.name, response.text)
    body = response.json()
    assert body["error"] == case.error
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    assert "Traceback" not in body["detail"] and 'File "' not in body["detail"]


@pytest.mark.parametrize("case", bad.CASES, ids=lambda c: c.name)
def test_each_bad_upload_is_a_4xx_with_a_message(client, corpus, case):
    assert_refused(upload(client, case.name, corpus[case.name]), case)


def test_each_bad_link_is_a_4xx_with_a_message(client, corpus):
    with serve_files({f"/{name}": data for name, data in corpus.items()}) as served:
        for case in bad.CASES:
            if not corpus[case.name] or case.name.startswith("many_tiny_frames"):
                continue  # empty: a fetch gets bytes or fails; the slow ones: once is enough
            r = client.post("/check-video-duplicate", json={"link": f"{served.base}/{case.name}"})
            assert_refused(r, case)


def test_nothing_was_added_and_the_next_valid_video_is_checked(client, corpus, videos):
    assert client.get("/videos").json()["videos"] == []
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    r = upload(client, "good.mp4", videos["orig"])
    assert r.status_code == 200, r.text
    assert r.json()["uuid"] == "good" and r.json()["is_duplicate"] is False
    assert [v["video_id"] for v in client.get("/videos").json()["videos"]] == ["good"]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_stays_bounded_while_the_corpus_is_refused_again(client, corpus):
    for case in bad.CASES:  # warm: allocator pools, codec tables, the models' arenas
        upload(client, case.name, corpus[case.name])
    before = rss_mib()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for case in bad.CASES:
            assert_refused(upload(client, case.name, corpus[case.name]), case)
    finally:
        done.set()
        sampler.join()
    after = rss_mib()
    print(f"RSS {before:.0f} MiB -> {after:.0f} MiB, peak {peak:.0f} MiB")
    assert after - before < RSS_GROWTH_MIB, (before, after)
    assert peak - before < RSS_PEAK_MIB, (before, peak)
    assert client.get("/healthz").status_code == 200


def test_an_upload_over_the_size_limit_is_413_before_it_is_decoded(client, videos, monkeypatch):
    settings = client.app.state.vdup.settings
    monkeypatch.setattr(settings, "fetch_max_bytes", 10_000)
    r = upload(client, "big.mp4", videos["orig"])  # within the body limit, over the file limit
    assert r.status_code == 413 and r.json()["error"] == "media_too_large", r.text
    assert "10000 bytes" in r.json()["detail"]
    assert client.get("/videos/big").status_code == 404


PART_HEAD = (
    b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
    b"Content-Type: video/mp4\r\n\r\n"
)


def test_a_request_body_over_the_limit_is_refused_while_it_arrives(client, monkeypatch):
    from vdup.api.app import BODY_SLACK

    monkeypatch.setattr(client.app.state.vdup.settings, "fetch_max_bytes", 1000)
    chunk = 64 * 1024
    content_type = (b"content-type", b"multipart/form-data; boundary=x")

    async def post(headers: list) -> tuple[int, list[dict]]:
        """POST /videos straight to the ASGI app (the test client would buffer the whole body
        first): a 12.5 MiB chunked upload; returns (chunks the app pulled, messages it sent)."""
        pulled, sent = 0, []

        async def receive() -> dict:
            nonlocal pulled
            pulled += 1
            body = PART_HEAD if pulled == 1 else b"\0" * chunk
            return {"type": "http.request", "body": body, "more_body": pulled < 200}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/videos",
            "raw_path": b"/videos",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        await client.app(scope, receive, send)
        return pulled, sent

    with warnings.catch_warnings():
        # Starlette leaves the part's spooled file to the garbage collector when the body
        # stops mid-file; collect it here rather than warn in whichever test runs next.
        warnings.simplefilter("ignore", ResourceWarning)
        pulled, sent = client.portal.call(post, [content_type])
        gc.collect()
    assert sent[0]["status"] == 413 and b"request_too_large" in sent[1]["body"]
    assert (pulled - 1) * chunk <= BODY_SLACK + 1000 + chunk
    length = (b"content-length", str(100 * BODY_SLACK).encode())
    pulled, sent = client.portal.call(post, [content_type, length])
    assert sent[0]["status"] == 413 and pulled == 0  # refused before reading any of it
