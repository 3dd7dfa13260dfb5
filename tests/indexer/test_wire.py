"""The wire format: exact round trips, and refusal of anything malformed (also over HTTP)."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
from fastapi.testclient import TestClient

from support.shards import record, scene
from vdup.catalog.types import StoredRows
from vdup.indexer import wire
from vdup.indexer.server import create_app
from vdup.indexer.settings import ShardSettings
from vdup.matching.decide import Candidate


def _candidate(vid: str, rows: int, audio_rows: int, retrieval: float) -> Candidate:
    rng = np.random.default_rng(rows)
    desc = rng.standard_normal((rows, 512)).astype(np.float16).astype(np.float32)
    return Candidate(
        vid,
        "root-" + vid,
        desc,
        np.arange(rows, dtype=np.int8) % 3,
        np.linspace(0, 5, rows, dtype=np.float32),
        rng.standard_normal((audio_rows, 128)).astype(np.float16).astype(np.float32),
        6.5,
        retrieval,
    )


def test_candidates_round_trip_exactly_at_stored_precision():
    cands = [_candidate("a", 7, 12, 0.93), _candidate("b", 1, 0, 0.5), _candidate("c", 40, 3, 0.1)]
    back = wire.decode_candidates(wire.encode_candidates(cands))
    assert [c.video_id for c in back] == ["a", "b", "c"]
    for c, b in zip(cands, back):
        assert b.root_id == c.root_id and b.retrieval == c.retrieval and b.duration_s == 6.5
        np.testing.assert_array_equal(b.descriptors, c.descriptors)
        np.testing.assert_array_equal(b.views, c.views)
        np.testing.assert_array_equal(b.row_times, c.row_times)
        np.testing.assert_array_equal(b.audio, c.audio)
        assert b.descriptors.dtype == np.float32 and b.audio.shape[1] == 128
    assert wire.decode_candidates(wire.encode_candidates([])) == []


def test_search_and_add_round_trip():
    q = scene(3).query_views()[0]
    query, k, m = wire.decode_search(wire.encode_search(q, 32, 20))
    np.testing.assert_array_equal(query, q)  # float32 on the wire: retrieval sees the same rows
    assert (k, m) == (32, 20)

    rec = record("vid-1", 4)
    rows = StoredRows.from_features(scene(4))
    back, back_rows, pending = wire.decode_add(wire.encode_add(rec, rows, pending=True))
    assert back == rec and pending is True
    np.testing.assert_array_equal(back_rows.descriptors, rows.descriptors.astype(np.float16))
    np.testing.assert_array_equal(back_rows.times, rows.times)
    back, none, pending = wire.decode_add(wire.encode_add(rec, None))
    assert back == rec and none is None and pending is False


def _frame(meta: dict, specs: list, payload: bytes = b"", magic=b"VDUP", version=1) -> bytes:
    header = json.dumps({"meta": meta, "arrays": specs}).encode()
    return struct.pack("<4sBI", magic, version, len(header)) + header + payload


GOOD = wire.encode_search(np.ones((2, 512), np.float32), 8, 4)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "too short"),
        (pickle.dumps({"query": [1.0]}), "not a vdup frame"),
        (GOOD[:-4], "shorter than its shape"),
        (GOOD + b"\0", "bytes after the last array"),
        (_frame({}, [], version=9), "version 9"),
        (struct.pack("<4sBI", b"VDUP", 1, 2**31) + b"{}", "header length"),
        (struct.pack("<4sBI", b"VDUP", 1, 3) + b"{x}", "not JSON"),
        (
            _frame({"k": 8, "max_candidates": 4}, [{"name": "query", "dtype": "O", "shape": [1]}]),
            "dtype 'O'",
        ),
        (
            _frame(
                {"k": 8, "max_candidates": 4},
                [{"name": "query", "dtype": "f4", "shape": [1, 511]}],
                b"\0" * 4 * 511,
            ),
            r"expected \[n, 512\]",
        ),
        (
            _frame(
                {"k": 8, "max_candidates": 4},
                [{"name": "query", "dtype": "f4", "shape": [-1, 512]}],
            ),
            "bad shape",
        ),
        (
            _frame(
                {"k": 0, "max_candidates": 4},
                [{"name": "query", "dtype": "f4", "shape": [1, 512]}],
                b"\0" * 2048,
            ),
            "k must be",
        ),
        (
            _frame(
                {"k": 8, "max_candidates": 4},
                [{"name": "other", "dtype": "f4", "shape": [1, 512]}],
                b"\0" * 2048,
            ),
            "'query' is missing",
        ),
        (wire.encode_search(np.full((1, 512), np.nan, np.float32), 8, 4), "NaN"),
    ],
)
def test_malformed_search_bodies_are_refused_with_a_reason(body, message):
    with pytest.raises(wire.WireError, match=message):
        wire.decode_search(body)


def test_malformed_add_bodies_are_refused_with_a_reason():
    rec = record("x").to_dict()
    with pytest.raises(wire.WireError, match="record field 'score'"):
        bad = dict(rec, score="high")
        wire.decode_add(wire.encode({"record": bad, "pending": False, "has_rows": False}, {}))
    with pytest.raises(wire.WireError, match="'root_id' is missing"):
        bad = {k: v for k, v in rec.items() if k != "root_id"}
        wire.decode_add(wire.encode({"record": bad, "pending": False, "has_rows": False}, {}))
    rows = StoredRows.from_features(scene(1))
    body = wire.encode(
        {"record": rec, "pending": False, "has_rows": True},
        {
            "descriptors": rows.descriptors.astype(np.float16),
            "views": rows.views[:-1],
            "times": rows.times,
            "audio": rows.audio.astype(np.float16),
        },
    )
    with pytest.raises(wire.WireError, match="'views': shape"):
        wire.decode_add(body)


def test_a_shard_answers_malformed_bodies_with_400_and_the_reason(tmp_path):
    settings = ShardSettings(data_dir=tmp_path / "s0", shard_id="shard-0")
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/search", content=pickle.dumps([1, 2, 3]))
        assert r.status_code == 400 and "not a vdup frame" in r.json()["detail"]
        r = client.post("/v1/videos", content=GOOD)
        assert r.status_code == 400 and "record" in r.json()["detail"]
        r = client.post("/v1/resolve", content=b"[]")
        assert r.status_code == 400
        r = client.post("/v1/search", content=GOOD)
        assert r.status_code == 200 and wire.decode_candidates(r.content) == []
        assert r.headers["X-Vdup-Shard"] == "shard-0"
        huge = b"\0" * (settings.max_body_mb * 1024 * 1024 + 1)
        r = client.post("/v1/search", content=huge)
        assert r.status_code == 400 and "exceeds" in r.json()["detail"]
