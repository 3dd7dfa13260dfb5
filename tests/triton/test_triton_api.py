"""End to end through the HTTP API with ``VDUP_TRITON_URL`` set: uploads are checked through the
real Triton; a bad file is 422, and a Triton that is down is 503 with Retry-After, never a
decision."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from vdup.api.app import create_app
from vdup.settings import Settings

pytestmark = [pytest.mark.triton, pytest.mark.slow]  # tritonserver


def upload(client: TestClient, data: bytes, uuid: str):
    return client.post(
        "/videos", files={"file": (f"{uuid}.mp4", data, "video/mp4")}, data={"uuid": uuid}
    )


def test_uploads_are_checked_through_triton(triton_server, videos, tmp_path, monkeypatch):
    monkeypatch.setenv("VDUP_TRITON_URL", triton_server.grpc_url)
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.triton_url == triton_server.grpc_url
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        first = upload(client, videos["orig"], "orig")
        assert first.status_code == 200, first.text
        assert first.json()["is_duplicate"] is False and first.json()["uuid"] == "orig"
        copy = upload(client, videos["flip"], "flip")
        assert copy.status_code == 200, copy.text
        body = copy.json()
        assert body["is_duplicate"] is True and body["duplicate_for"] == "orig", body
        bad = upload(client, b"\x00" * 4096, "junk")
        assert bad.status_code == 422 and bad.json()["error"] == "bad_media", bad.text
        assert client.get("/videos/junk").status_code == 404


def test_triton_down_is_503_with_retry_after(videos, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("VDUP_TRITON_URL", f"127.0.0.1:{s.getsockname()[1]}")
        with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
            assert client.get("/readyz").status_code == 503
            answer = upload(client, videos["orig"], "orig")
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "5"
            assert answer.json()["error"] == "unavailable"
            assert "feature extraction is unavailable" in answer.json()["detail"]
            assert client.get("/videos/orig").status_code == 404
