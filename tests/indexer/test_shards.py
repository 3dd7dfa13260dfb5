"""The shard tier with real shard processes on loopback: same decisions as one catalog, nothing
acknowledged lost to kill -9, fail closed (503) while a shard is down, clear start-up errors,
and each shard's metrics."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from support.shards import FeatureExtractor, Shards, payload, record, scene
from vdup.catalog.local import LocalCatalog
from vdup.checker import DuplicateChecker
from vdup.errors import Unavailable
from vdup.indexer.client import ShardedCatalog, placement
from vdup.matching.decide import DecisionConfig

pytestmark = pytest.mark.slow  # shard processes, kill -9

# Originals, edited copies (two per scene for some), an exact re-upload, unrelated videos.
UPLOADS = (
    [(f"o{s}", payload(s)) for s in range(1, 13)]
    + [(f"c{s}", payload(s, copy=1)) for s in (2, 5, 7, 11)]
    + [("exact5", payload(5)), ("u40", payload(40))]
    + [(f"cc{s}", payload(s, copy=2)) for s in (2, 7, 9)]
    + [("u41", payload(41))]
)


def test_two_shards_give_the_same_decisions_as_one_catalog(tmp_path, shards):
    local = DuplicateChecker(FeatureExtractor(), LocalCatalog(tmp_path / "one"), DecisionConfig())
    sharded = DuplicateChecker(FeatureExtractor(), ShardedCatalog(shards.urls), DecisionConfig())
    try:
        for vid, data in UPLOADS:
            want = local.check(data, vid).to_response()
            got = sharded.check(data, vid).to_response()
            assert got == want, vid
        assert sharded.catalog.get("cc9").duplicate_for == "o9"
        assert sharded.catalog.get("exact5").path == "exact"
        stats = sharded.catalog.stats()
        assert stats["videos"] == len(UPLOADS) == local.catalog.stats()["videos"]
        assert all(s["videos"] > 3 and s["pending"] == 0 for s in stats["shards"])
        page = sharded.catalog.list(limit=7, after="c5")
        assert [r.video_id for r in page] == [r.video_id for r in local.catalog.list(7, "c5")]
    finally:
        local.catalog.close()
        sharded.catalog.close()


def test_kill_9_during_a_stream_of_adds_loses_nothing_acknowledged(tmp_path):
    # Snapshots every 40 rows, so the kill also lands around snapshot writes.
    shards = Shards(tmp_path, 2, env={"VDUP_INDEXER_SNAPSHOT_ROWS": "40"}).start()
    cat = ShardedCatalog(shards.urls, timeout_s=5, settle_races=False)
    acked: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def writer(w: int) -> None:
        n = 0
        while not stop.is_set():
            vid = f"w{w}-{n}"
            try:
                cat.add(record(vid, created_at=time.time()), scene(1000 * w + n))
            except Unavailable:
                time.sleep(0.01)
            else:
                with lock:
                    acked.append(vid)
            n += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in (1, 2)]
    try:
        for t in threads:
            t.start()
        while len(acked) < 60:
            time.sleep(0.02)
        shards.procs[0].kill()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        shards.restart(0)
        on_killed = [v for v in acked if placement(v, 2) == 0]
        assert len(on_killed) > 20
        for vid in acked:
            assert cat.get(vid) is not None, vid
        for vid in on_killed[-10:] + on_killed[:5]:
            w, n = vid[1:].split("-")
            top = cat.search(scene(1000 * int(w) + int(n)), 8, 1)[0]
            assert top.video_id == vid and top.retrieval > 0.99
        assert cat.stats()["videos"] >= len(acked)
    finally:
        stop.set()
        cat.close()
        shards.stop()


def test_a_stopped_or_hung_shard_gives_503_and_checks_work_again_once_it_is_back(tmp_path, shards):
    from vdup.api.app import create_app
    from vdup.settings import Settings

    cat = ShardedCatalog(shards.urls, timeout_s=1.0)
    checker = DuplicateChecker(FeatureExtractor(), cat, DecisionConfig())
    checker.check(payload(1), "orig")
    app = create_app(Settings(data_dir=tmp_path / "api"), checker=checker)
    with TestClient(app, raise_server_exceptions=False) as client:
        down = shards.procs[1]
        down.stop()
        with pytest.raises(Unavailable, match=f"index shard {shards.urls[1]} is unavailable"):
            checker.check(payload(1, copy=1), "copy")
        r = client.post(
            "/videos", files={"file": ("copy.mp4", payload(1, copy=1))}, data={"uuid": "copy"}
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "unavailable" and "Retry-After" in r.headers
        assert "index shard" in r.json()["detail"]
        assert client.get("/readyz").status_code == 503

        shards.restart(1)
        r = client.post(
            "/videos", files={"file": ("copy.mp4", payload(1, copy=1))}, data={"uuid": "copy"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["is_duplicate"] and r.json()["duplicate_for"] == "orig"

        # A hung shard (SIGSTOP: the port accepts, nothing answers) times out into 503 too.
        os.kill(shards.procs[0].pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = client.post("/videos", files={"file": ("x.mp4", payload(2))}, data={"uuid": "x"})
            assert r.status_code == 503 and time.monotonic() - t0 < 5
        finally:
            os.kill(shards.procs[0].pid, signal.SIGCONT)
        r = client.post("/videos", files={"file": ("x.mp4", payload(2))}, data={"uuid": "x"})
        assert r.status_code == 200 and not r.json()["is_duplicate"]
    assert cat.stats()["videos"] == 3
    cat.close()


def _start_shard(data_dir, timeout: float = 30) -> subprocess.CompletedProcess:
    from support.shards import free_port

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "vdup.cli",
            "indexer",
            "--data",
            str(data_dir),
            "--port",
            str(free_port()),
            "--shard-id",
            "shard-0",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_foreign_or_damaged_catalog_stops_start_up_with_a_clear_error(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "catalog.sqlite").write_bytes(b"PNG\x89 not a database at all" * 200)
    done = _start_shard(foreign)
    assert done.returncode == 2
    assert "cannot start shard shard-0" in done.stderr and "not a vdup catalog" in done.stderr
    assert "Traceback" not in done.stderr

    other_app = tmp_path / "other"
    other_app.mkdir()
    db = sqlite3.connect(other_app / "catalog.sqlite")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema', '7')")
    db.commit()
    db.close()
    done = _start_shard(other_app)
    assert done.returncode == 2 and "schema version 7" in done.stderr

    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / "index.faiss").write_bytes(b"\0" * 100)
    done = _start_shard(orphan)
    assert done.returncode == 2 and "no catalog.sqlite" in done.stderr


def test_a_damaged_snapshot_is_rebuilt_and_a_held_data_dir_is_refused(tmp_path):
    shards = Shards(tmp_path, 1).start()
    cat = ShardedCatalog(shards.urls, settle_races=False)
    try:
        for i in range(5):
            cat.add(record(f"v{i}", i + 1), scene(i))
        done = _start_shard(tmp_path / "shard-0")  # a second process on the same directory
        assert done.returncode == 2 and "in use by another shard" in done.stderr
        shards.procs[0].stop()  # SIGTERM: final snapshot
        snap = tmp_path / "shard-0" / "index.faiss"
        assert snap.stat().st_size > 5 * 8 * 512 * 4
        snap.write_bytes(snap.read_bytes()[:1000])  # torn / damaged
        shards.restart(0)
        assert cat.stats()["vectors"] == 5 * 8
        assert cat.search(scene(3), 8, 1)[0].video_id == "v3"
        assert "rebuilding the index" in shards.procs[0].log_tail(20000)
    finally:
        cat.close()
        shards.stop()


def test_sigterm_writes_a_final_snapshot_so_restart_replays_nothing(tmp_path):
    shards = Shards(tmp_path, 1).start()
    cat = ShardedCatalog(shards.urls, settle_races=False)
    try:
        for i in range(3):
            cat.add(record(f"v{i}", i + 1), scene(i))
        assert cat.stats()["shards"][0]["unsnapshotted_rows"] == 24
        # uvicorn re-raises SIGTERM once its graceful shutdown (our lifespan) has finished.
        assert shards.procs[0].stop() in (0, -signal.SIGTERM)
        assert "closed (final snapshot" in shards.procs[0].log_tail(20000)
        shards.restart(0)
        s = cat.stats()["shards"][0]
        assert s["unsnapshotted_rows"] == 0 and s["vectors"] == 24 and s["last_snapshot_at"] > 0
        np.testing.assert_allclose(cat.search(scene(2), 8, 1)[0].retrieval, 1.0, atol=1e-3)
    finally:
        cat.close()
        shards.stop()


def test_a_misordered_or_wrong_shard_list_fails_closed(shards):
    import http.server

    swapped = ShardedCatalog(list(reversed(shards.urls)))
    with pytest.raises(Unavailable, match="sits at position 0"):
        swapped.search(scene(1), 8, 4)
    swapped.close()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wrong = ShardedCatalog([shards.urls[0], f"http://127.0.0.1:{server.server_address[1]}"])
        with pytest.raises(Unavailable, match="not a vdup indexer shard"):
            wrong.get("some-video")
        wrong.close()
    finally:
        server.shutdown()
        server.server_close()


def test_each_shard_exports_its_metrics_with_plausible_values(shards):
    from prometheus_client.parser import text_string_to_metric_families

    cat = ShardedCatalog(shards.urls, settle_races=False)
    try:
        for i in range(6):
            cat.add(record(f"v{i}", i + 1), scene(i))
        cat.search(scene(1), 8, 4)
        snapshot_s = cat.snapshot()
        t_snapshot = time.time()
        # After the snapshot, one more video on each shard: the write-ahead log is not empty.
        late = [next(f"w{n}" for n in range(100) if placement(f"w{n}", 2) == i) for i in (0, 1)]
        for n, vid in enumerate(late):
            cat.add(record(vid, 10 + n), scene(10 + n))
        per_shard = cat.stats()["shards"]
        for i, url in enumerate(shards.urls):
            text = httpx.get(url + "/metrics").text
            samples = {}
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name.startswith("vdup_shard_") and not s.name.endswith("_created"):
                        assert (
                            set(s.labels) <= {"shard", "le"} and s.labels["shard"] == f"shard-{i}"
                        ), s
                        if "le" not in s.labels:
                            samples[s.name] = s.value
            stats = per_shard[i]
            assert samples["vdup_shard_vectors"] == stats["vectors"] > 0
            assert samples["vdup_shard_videos"] == stats["videos"] > 1
            assert samples["vdup_shard_add_duration_seconds_count"] == stats["videos"]
            assert 0 < samples["vdup_shard_add_duration_seconds_sum"] < 10 * stats["videos"]
            assert samples["vdup_shard_search_duration_seconds_count"] == 1
            assert 0 < samples["vdup_shard_search_duration_seconds_sum"] < 10
            assert samples["vdup_shard_snapshot_duration_seconds_count"] >= 1
            # /v1/snapshot answers its duration rounded to ms.
            assert samples["vdup_shard_snapshot_duration_seconds_sum"] >= snapshot_s[i] - 0.001
            assert samples["vdup_shard_snapshot_duration_seconds_sum"] > 0
            assert 0 <= samples["vdup_shard_snapshot_age_seconds"] <= time.time() - t_snapshot + 1
            assert samples["vdup_shard_wal_bytes"] == stats["unsnapshotted_rows"] * 512 * 2 > 0
    finally:
        cat.close()
