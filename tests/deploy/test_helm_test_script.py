"""The helm test pod's script, run here against a stand-in API on 127.0.0.1: it passes on a
well-formed answer and fails on a malformed one, a wrong verdict or an HTTP error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .conftest import render_case


class _Api(BaseHTTPRequestHandler):
    answer: tuple[int, Any] = (200, {})
    seen: list[tuple[str, Any, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers, body))
        status, payload = type(self).answer
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    _Api.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _run_script(api_url: str, expect: str = "") -> subprocess.CompletedProcess[str]:
    (pod,) = render_case("default").of_kind("Pod")
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    env.update(
        API_URL=api_url, API_KEYS="key-1,key-2", EXPECT_DUPLICATE=expect, TIMEOUT_SECONDS="10"
    )
    return subprocess.run(
        [sys.executable, "-c", container["args"][0]],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("answer", "expect", "ok"),
    [
        ((200, {"is_duplicate": False, "duplicate_for": ""}), "", True),
        (
            (200, {"is_duplicate": True, "duplicate_for": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}),
            "true",
            True,
        ),
        (
            (200, {"is_duplicate": True, "duplicate_for": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}),
            "false",
            False,
        ),
        ((200, {"is_duplicate": True, "duplicate_for": "not-a-uuid"}), "", False),
        ((200, {"is_duplicate": "no", "duplicate_for": ""}), "", False),
        ((200, {"is_duplicate": True, "duplicate_for": ""}), "", False),
        ((500, {"detail": "boom"}), "", False),
    ],
)
def test_helm_test_script(api: str, answer: tuple[int, Any], expect: str, ok: bool) -> None:
    _Api.answer = answer
    result = _run_script(api, expect)
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    (path, headers, body) = _Api.seen[0]
    assert path == "/check-video-duplicate"
    assert headers.get("Authorization") == "Bearer key-1"
    (pod,) = render_case("default").of_kind("Pod")
    video_url = next(
        e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "VIDEO_URL"
    )
    assert body == {"link": video_url}
