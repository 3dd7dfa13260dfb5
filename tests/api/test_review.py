"""The moderators' API on the embedded catalog: roles, evidence, verdicts, the negative list.

Real clips (``tests/support/media.py``), real models, a real SQLite catalog in ``tmp_path``;
the restart is a second app over the same directory.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from vdup.api.app import create_app
from vdup.settings import Settings

CHECK = {"Authorization": "Bearer ck-1"}
MOD = {"Authorization": "Bearer mk-1"}
KEYS = {"api_keys": ["uploader:ck-1"], "moderator_keys": ["alice:mk-1"]}


def client_for(data_dir, **overrides) -> TestClient:
    settings = Settings(data_dir=data_dir, **{**KEYS, **overrides})
    return TestClient(create_app(settings), raise_server_exceptions=False)


def upload(client: TestClient, data: bytes, video_id: str) -> dict:
    r = client.post(
        "/videos",
        files={"file": (f"{video_id}.mp4", data, "video/mp4")},
        data={"uuid": video_id},
        headers=CHECK,
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def checked(tmp_path, videos):
    """An original and its mirrored copy, checked; the data directory."""
    data = tmp_path / "data"
    with client_for(data) as client:
        assert upload(client, videos["orig"], "orig")["is_duplicate"] is False
        copy = upload(client, videos["flip"], "flip")
        assert copy["is_duplicate"] is True and copy["duplicate_for"] == "orig"
    return data


def test_review_routes_need_the_moderate_role(checked):
    with client_for(checked) as client:
        for method, url, body in [
            ("GET", "/review/queue", None),
            ("GET", "/videos/flip/evidence", None),
            ("GET", "/videos/flip/evidence/query/0.jpg", None),
            ("POST", "/videos/flip/verdict", {"verdict": "not_duplicate"}),
            ("GET", "/audit", None),
        ]:
            assert client.request(method, url, json=body).status_code == 401, url
            bad = {"Authorization": "Bearer nope"}
            assert client.request(method, url, json=body, headers=bad).status_code == 401, url
            r = client.request(method, url, json=body, headers=CHECK)
            assert r.status_code == 403 and r.json()["error"] == "forbidden", url
        # and a moderator key does not upload, but may read records
        r = client.post("/videos", files={"file": ("a.mp4", b"x", "video/mp4")}, headers=MOD)
        assert r.status_code == 403
        assert client.get("/videos/flip", headers=MOD).status_code == 200
        assert client.get("/videos/flip", headers=CHECK).status_code == 200


def test_the_queue_shows_the_copy_with_its_evidence_and_thumbnails(checked):
    with client_for(checked) as client:
        items = client.get("/review/queue", headers=MOD).json()["items"]
        assert [i["video_id"] for i in items] == ["flip"]
        item = items[0]
        assert item["duplicate_for"] == "orig" and item["verdict"] is None
        assert item["query_segment_s"][1] > item["query_segment_s"][0]
        ev = client.get("/videos/flip/evidence", headers=MOD).json()
        assert ev["matched_video"] == "orig" and ev["is_duplicate"] is True
        assert ev["features"] and all(isinstance(v, float) for v in ev["features"].values())
        assert 3 <= len(ev["pairs"]) <= 6
        for pair in ev["pairs"]:
            for url in (pair["query_thumb"], pair["match_thumb"]):
                r = client.get(url, headers=MOD)
                assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
                assert r.content[:2] == b"\xff\xd8" and 500 < len(r.content) < 20_000
        # the original's own evidence: nothing matched
        orig = client.get("/videos/orig/evidence", headers=MOD).json()
        assert orig["is_duplicate"] is False and orig["pairs"] == []
        assert client.get("/videos/nope/evidence", headers=MOD).status_code == 404
        # filters
        assert client.get("/review/queue?path=exact", headers=MOD).json()["items"] == []
        assert client.get("/review/queue?min_score=1", headers=MOD).json()["items"] in ([], items)
        assert client.get("/review/queue?max_score=0.01", headers=MOD).json()["items"] == []


def test_an_overturned_copy_becomes_an_original_and_later_copies_do_not_fall_back(checked, videos):
    with client_for(checked) as client:
        r = client.post(
            "/videos/flip/verdict",
            json={"verdict": "not_duplicate", "note": "the creator's own mirror"},
            headers=MOD,
        )
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["video"]["is_duplicate"] is False and out["video"]["root_id"] == "flip"
        assert out["verdict"]["who"] == "alice" and out["verdict"]["before"]["root_id"] == "orig"
        # the queue's open items no longer list it; 'all' shows it with its verdict
        assert client.get("/review/queue", headers=MOD).json()["items"] == []
        done = client.get("/review/queue?status=all", headers=MOD).json()["items"]
        assert done[0]["verdict"]["verdict"] == "not_duplicate"
        # a further copy of the same (mirrored) content matches flip, not orig
        again = upload(client, videos["copy_of_flip"], "copy2")
        assert again["duplicate_for"] != "orig", again
        assert again["is_duplicate"] is True and again["duplicate_for"] == "flip", again
        # while a plain copy of orig still finds orig
        trim = upload(client, videos["trim_crop"], "trim")
        assert trim["is_duplicate"] is True and trim["duplicate_for"] == "orig", trim


def test_verdicts_are_validated(checked):
    with client_for(checked) as client:
        post = client.post
        r = post("/videos/nope/verdict", json={"verdict": "not_duplicate"}, headers=MOD)
        assert r.status_code == 404
        r = post("/videos/flip/verdict", json={"verdict": "duplicate_of", "of": "x"}, headers=MOD)
        assert r.status_code == 404 and "'x'" in r.json()["detail"]
        r = post("/videos/flip/verdict", json={"verdict": "duplicate_of"}, headers=MOD)
        assert r.status_code == 422
        r = post("/videos/flip/verdict", json={"verdict": "maybe"}, headers=MOD)
        assert r.status_code == 422
        # the original cannot become a copy of its own copy
        r = post(
            "/videos/orig/verdict", json={"verdict": "duplicate_of", "of": "flip"}, headers=MOD
        )
        assert r.status_code == 409 and r.json()["error"] == "conflict"
        assert client.get("/videos/orig", headers=MOD).json()["is_duplicate"] is False
        assert client.get("/audit", headers=MOD).json() == []


def test_a_verdict_survives_a_restart_and_is_in_the_audit_log(checked, videos):
    with client_for(checked) as client:
        upload(client, videos["orig_b"], "other")
        r = client.post(
            "/videos/flip/verdict", json={"verdict": "duplicate_of", "of": "other"}, headers=MOD
        )
        assert r.status_code == 200, r.text
    with client_for(checked) as client:  # a new process over the same directory
        flip = client.get("/videos/flip", headers=MOD).json()
        assert flip["root_id"] == "other" and flip["duplicate_for"] == "other"
        assert flip["is_duplicate"] is True and flip["path"] == "verdict"
        log = client.get("/audit", headers=MOD).json()
        assert len(log) == 1 and log[0]["video_id"] == "flip" and log[0]["who"] == "alice"
        assert log[0]["before"]["duplicate_for"] == "orig" and log[0]["after"]["root_id"] == "other"
        ev = client.get("/videos/flip/evidence", headers=MOD).json()
        assert [v["verdict"] for v in ev["verdicts"]] == ["duplicate_of"]


def test_overturning_an_original_moves_its_copies_with_it(checked, videos):
    with client_for(checked) as client:
        upload(client, videos["orig_b"], "other")
        r = client.post(
            "/videos/orig/verdict", json={"verdict": "duplicate_of", "of": "other"}, headers=MOD
        )
        assert r.status_code == 200 and r.json()["changed"] == ["flip"]
        flip = client.get("/videos/flip", headers=MOD).json()
        assert flip["root_id"] == "other" and flip["duplicate_for"] == "other"


def test_the_evidence_of_a_deleted_video_is_gone(checked, videos):
    with client_for(checked) as client:
        upload(client, videos["copy_of_flip"], "copy2")
        ev = client.get("/videos/copy2/evidence", headers=MOD).json()
        matched = ev["matched_video"]
        assert matched in ("orig", "flip") and ev["pairs"][0]["match_thumb"]
        assert client.delete(f"/videos/{matched}", headers=CHECK).status_code == 204
        assert client.get(f"/videos/{matched}/evidence", headers=MOD).status_code == 404
        r = client.get(f"/videos/{matched}/evidence/query/0.jpg", headers=MOD)
        assert r.status_code == 404
        # its frames leave the copies' evidence too; the copies' own frames stay
        ev = client.get("/videos/copy2/evidence", headers=MOD).json()
        assert all(p["match_thumb"] is None for p in ev["pairs"])
        assert all(p["query_thumb"] for p in ev["pairs"])


def test_without_keys_review_is_open_as_the_rest(tmp_path, videos):
    settings = Settings(data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        r = client.post("/videos", files={"file": ("a.mp4", videos["orig"], "video/mp4")})
        assert r.status_code == 200
        assert client.get("/review/queue").status_code == 200
        assert client.get("/audit").json() == []


def test_a_catalog_without_a_review_store_answers_501_not_an_empty_queue(tmp_path):
    from vdup.runtime import build_checker

    settings = Settings(data_dir=tmp_path / "data")
    checker = build_checker(settings)
    checker.review = None  # what the sharded catalog gives the checker
    try:
        with TestClient(create_app(settings, checker=checker)) as client:
            r = client.get("/review/queue")
            assert r.status_code == 501 and r.json()["error"] == "review_unavailable"
            assert "sharded" in r.json()["detail"]
    finally:
        checker.catalog.close()
        checker.extractor.close()
