"""Dependencies failing under the API: Triton unreachable, a catalog that cannot write.

Each fault must end in a clear error with nothing acknowledged that was not stored, and the
service must serve again once the fault is gone. (Index shards that fail are the indexer's
tests; a process killed with SIGKILL is tests/core/catalog/test_kill9.py.)
"""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from vdup.api.app import create_app
from vdup.settings import Settings


def upload(client: TestClient, data: bytes, uuid: str):
    return client.post(
        "/videos", files={"file": (f"{uuid}.mp4", data, "video/mp4")}, data={"uuid": uuid}
    )


def test_triton_unreachable_is_503_with_retry_after_then_the_service_recovers(
    tmp_path, videos, monkeypatch
):
    data_dir = tmp_path / "data"
    with socket.socket() as held:  # bound, never listening: nothing can answer on this port
        held.bind(("127.0.0.1", 0))
        monkeypatch.setenv("VDUP_TRITON_URL", f"127.0.0.1:{held.getsockname()[1]}")
        monkeypatch.setenv("VDUP_TRITON_TIMEOUT_S", "5")
        with TestClient(create_app(Settings(data_dir=data_dir))) as client:
            assert client.get("/readyz").status_code == 503
            for _attempt in range(2):
                r = upload(client, videos["orig"], "orig")
                assert r.status_code == 503, r.text
                assert int(r.headers["Retry-After"]) > 0
                body = r.json()
                assert body["error"] == "unavailable" and "unreachable" in body["detail"]
                assert "is_duplicate" not in body  # no decision without features
            assert client.get("/videos").json()["videos"] == []
            assert client.get("/healthz").status_code == 200  # alive, only not ready
    monkeypatch.delenv("VDUP_TRITON_URL")
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        assert client.get("/readyz").status_code == 200
        r = upload(client, videos["orig"], "orig")
        assert r.status_code == 200, r.text
        assert r.json()["is_duplicate"] is False and r.json()["already_known"] is False


def catalog_of(client: TestClient):
    return client.app.state.vdup.checker.catalog


@pytest.mark.parametrize(
    "fault, pragma, undo, message",
    [
        # SQLite's own cap on the file's size gives the error a full disk gives (SQLITE_FULL)
        # once a write needs a new page: a real full disk cannot be made here (no root mounts),
        # and root ignores chmod.
        (
            "disk full",
            "PRAGMA max_page_count = {pages}",
            "PRAGMA max_page_count = 4294967294",
            "full",
        ),
        # SQLite's read-only mode refuses every write, as a read-only file or mount would.
        ("read-only", "PRAGMA query_only = 1", "PRAGMA query_only = 0", "readonly"),
    ],
    ids=["disk-full", "read-only"],
)
def test_a_catalog_that_cannot_write_refuses_adds_and_loses_nothing(
    tmp_path, videos, fault, pragma, undo, message
):
    data_dir = tmp_path / "data"
    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        assert upload(client, videos["orig"], "kept").status_code == 200
        catalog = catalog_of(client)
        vectors = catalog.stats()["vectors"]
        db = catalog._store.db  # the catalog's one connection: the fault applies to its writes only
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(pragma.format(pages=pages))

        for name in ("flip", "orig_b"):  # a copy, and a new video
            r = upload(client, videos[name], name)
            assert r.status_code == 507, (fault, r.text)
            assert r.json()["error"] == "storage_error" and message in r.json()["detail"]
            assert client.get(f"/videos/{name}").status_code == 404
        stored = ["kept"]
        r = upload(client, videos["orig"], "exact")  # identical bytes: no model, a small write
        if fault == "read-only":
            assert r.status_code == 507, r.text
        elif r.status_code == 200:  # one record may still fit in a page that has room
            stored.append("exact")
        assert r.status_code in (200, 507), r.text
        assert catalog.stats() == {"videos": len(stored), "vectors": vectors, "index": "Flat"}
        for name in stored:
            assert client.get(f"/videos/{name}").status_code == 200

        db.execute(undo)
        r = upload(client, videos["flip"], "flip")
        assert r.status_code == 200 and r.json()["duplicate_for"] == "kept", r.text

    with TestClient(create_app(Settings(data_dir=data_dir))) as client:  # a restart
        listed = client.get("/videos").json()["videos"]
        assert sorted(v["video_id"] for v in listed) == sorted(["flip", *stored])
        r = upload(client, videos["trim_crop"], "trim_crop")
        assert r.json()["is_duplicate"] is True and r.json()["duplicate_for"] == "kept"
