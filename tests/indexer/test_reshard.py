"""Resharding 2 -> 3 shards with ``vdup reshard``, on a ``vdup up``-style stack of real processes:
nothing acknowledged is lost, a crashed run is finished by the next one, and checks answer
correctly or 503 throughout."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from support.shards import free_port, record, scene
from vdup.catalog.local import LocalCatalog
from vdup.catalog.types import StoredRows
from vdup.devstack.stack import LocalStack, shard_process
from vdup.errors import Unavailable
from vdup.indexer.client import ShardedCatalog, placement
from vdup.indexer.reshard import Resharder

pytestmark = pytest.mark.slow  # shard processes

GRACE_S = 6.0  # 6 x the API's shard-call deadline below, as the default would be
API_SHARD_TIMEOUT_S = 1.0
SEEDS = range(1, 61)


def moving(prefix: str) -> str:
    """An id that changes shard when 2 shards become 3."""
    return next(
        f"{prefix}-{k}"
        for k in range(1000)
        if placement(f"{prefix}-{k}", 2) != placement(f"{prefix}-{k}", 3)
    )


def staying(prefix: str) -> str:
    return next(
        f"{prefix}-{k}"
        for k in range(1000)
        if placement(f"{prefix}-{k}", 2) == placement(f"{prefix}-{k}", 3)
    )


def listing(cat: ShardedCatalog, i: int) -> list[str]:
    out, after = [], ""
    while page := cat.list_on(i, 200, after):
        out += [r.video_id for r in page]
        after = page[-1].video_id
    return out


def reshard(urls: list[str], *extra: str, log: Path) -> tuple[int, dict]:
    with open(log, "ab") as err:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "vdup.cli",
                "reshard",
                "--shards",
                ",".join(urls),
                "--grace-s",
                str(GRACE_S),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=120,
        )
    return done.returncode, json.loads(done.stdout.decode().strip().splitlines()[-1])


def retrying(call, tries: int = 10):
    """``call`` again while it answers 503 (the API's 1 s shard deadline on 2 busy cores)."""

    def again(*args, **kwargs):
        for _ in range(tries - 1):
            r = call(*args, **kwargs)
            if r.status_code != 503:
                return r
            time.sleep(0.5)
        return call(*args, **kwargs)

    return again


def test_stored_form_round_trips_between_catalogs(tmp_path):
    a, b = LocalCatalog(tmp_path / "a"), LocalCatalog(tmp_path / "b")
    try:
        a.add(record("v1", 1), scene(1), pending=True)
        a.add(record("v2", 2), None)
        for vid in ("v1", "v2"):
            rec, rows, pending = a.stored(vid)
            b.add_rows(rec, rows, pending)
            again = b.stored(vid)
            assert again[0] == rec and again[2] == pending
            if rows is None:
                assert again[1] is None
            else:
                for name in ("descriptors", "views", "times", "audio"):
                    got, want = getattr(again[1], name), getattr(rows, name)
                    assert got.dtype == want.dtype and np.array_equal(got, want), name
        assert a.stored("nope") is None and b.get_state("v1")[1] is True
    finally:
        a.close()
        b.close()


def test_moves_wait_for_the_grace_and_never_bring_back_a_deleted_video(shards):
    """Injected interleavings on real shards growing 1 -> 2: a user deletes one video between
    its read and its copy and another while it sits on both shards; a check stored one video on
    its new shard already (same bytes) and another id there with other bytes."""
    ids = [f"v{i}" for i in range(16)]
    one = ShardedCatalog(shards.urls[:1], settle_races=False)
    for n, vid in enumerate(ids):
        one.add(record(vid, n + 1), scene(n + 1))
    one.close()
    movers = [v for v in ids if placement(v, 2) == 1]
    assert len(movers) >= 6
    early, late, same, other = movers[:4]
    api = ShardedCatalog(shards.urls, settle_races=False)
    api.add_to(1, record(same, 50, created_at=123.0), StoredRows.from_features(scene(50)))
    clash = record(other, 51)
    clash.sha256 = "other bytes"
    api.add_to(1, clash, StoredRows.from_features(scene(51)))
    added: dict[str, float] = {}
    deleted: dict[str, float] = {}

    class Interleaved(ShardedCatalog):
        def export_from(self, i, video_id):
            out = super().export_from(i, video_id)
            if video_id == early:
                assert api.delete(early)
            return out

        def add_to(self, i, rec, rows, pending=False):
            created = super().add_to(i, rec, rows, pending)
            added[rec.video_id] = time.monotonic()
            if rec.video_id == late:
                assert api.delete(late)
            return created

        def delete_on(self, i, video_id):
            if i == 0:
                deleted[video_id] = time.monotonic()
            return super().delete_on(i, video_id)

    cat = Interleaved(shards.urls, settle_races=False)
    s = Resharder(cat, grace_s=1.0, workers=2, progress=lambda line: None).run()
    cat.close()
    assert (s.vanished, s.already_there, s.errors) == (2, 1, 1), s
    assert s.moved == len(movers) - 4 and not s.complete
    assert other in s.error_samples[0] and "another video" in s.error_samples[0]
    assert all(deleted[v] - added[v] >= 1.0 for v in deleted if v in added)
    on0, on1 = listing(api, 0), listing(api, 1)
    assert early not in on0 + on1 and late not in on0 + on1
    assert on0 == sorted([v for v in ids if placement(v, 2) == 0] + [other])
    assert on1 == sorted(set(movers) - {early, late})
    assert api.get_on(1, same).created_at == 123.0 and api.get_on(1, other).sha256 == "other bytes"
    api.close()


def test_reshard_2_to_3_under_checks_loses_nothing_and_resumes_after_kill_9(tmp_path, videos):
    root_a, root_b, copy_a = moving("orig"), moving("origb"), moving("flip")
    stay_copy = staying("trim")
    stack = LocalStack(
        2,
        triton=False,
        data_root=tmp_path,
        api_port=free_port(),
        shard_ports=[free_port(), free_port()],
    )
    with stack, httpx.Client(base_url=stack.api_url, timeout=60) as api:
        two = ShardedCatalog(stack.shard_urls, settle_races=False)
        # -- a catalog on 2 shards: real videos through the API, synthetic ones straight in
        roots: dict[str, str] = {}
        for vid, name in (
            (root_a, "orig"),
            (root_b, "orig_b"),
            (copy_a, "flip"),
            (stay_copy, "trim_crop"),
        ):
            r = api.post(
                "/videos", files={"file": (f"{name}.mp4", videos[name])}, data={"uuid": vid}
            )
            assert r.status_code == 200, r.text
            roots[vid] = r.json()["duplicate_for"] or vid
        assert roots == {root_a: root_a, root_b: root_b, copy_a: root_a, stay_copy: root_a}
        for s in SEEDS:
            two.add(record(f"s{s}", s), scene(s))
            roots[f"s{s}"] = f"s{s}"
        stuck = moving("stuck")  # pending forever: its check died before settling it
        stuck_rec = record(stuck, 999, created_at=time.time() - 3600)
        two.add_to(
            placement(stuck, 2), stuck_rec, StoredRows.from_features(scene(999)), pending=True
        )
        roots[stuck] = stuck
        two.close()
        assert sum(placement(v, 2) != placement(v, 3) for v in roots) >= 12

        # -- a third shard, and the API pointed at 3 (a short deadline, so a slow shard is a 503)
        shard2 = shard_process(
            2, free_port(), tmp_path / "shard-2", log_path=tmp_path / "logs" / "shard-2.log"
        )
        stack.shards.append(shard2)
        shard2.start().wait_ready(60)
        urls = stack.shard_urls
        stack.api.stop()
        stack.api.extra_env.update(
            {
                "VDUP_INDEXER_URLS": ",".join(urls),
                "VDUP_INDEXER_TIMEOUT_S": str(API_SHARD_TIMEOUT_S),
            }
        )
        stack.api.start().wait_ready(120)
        three = ShardedCatalog(urls, timeout_s=API_SHARD_TIMEOUT_S, settle_races=False)

        # -- checks that run throughout the move: each answer is right or a 503, never wrong
        stop, lock = threading.Event(), threading.Lock()
        wrong: list[str] = []
        answers = {"ok": 0, "503": 0}
        checked: dict[str, str] = {}  # ids added by the checks meanwhile -> their root

        def tally(ok: bool | None, what: str) -> None:
            with lock:
                if ok is None:
                    answers["503"] += 1
                elif ok:
                    answers["ok"] += 1
                else:
                    wrong.append(what)

        def get_known() -> None:
            with httpx.Client(base_url=stack.api_url, timeout=30) as c:
                while not stop.is_set():
                    for vid, root in list(roots.items()):
                        r = c.get(f"/videos/{vid}")
                        ok = (
                            None
                            if r.status_code == 503
                            else (r.status_code == 200 and r.json()["root_id"] == root)
                        )
                        tally(ok, f"GET {vid}: {r.status_code} {r.text[:200]}")
                        time.sleep(0.01)

        def search_copies() -> None:
            while not stop.is_set():
                for s in SEEDS:
                    try:
                        cands = three.search(scene(s, copy=1), 32, 20)
                    except Unavailable:
                        tally(None, "")
                        continue
                    found = [c.video_id for c in cands]
                    tally(bool(found) and found[0] == f"s{s}", f"search s{s}: {found[:3]}")
                    time.sleep(0.01)

        def check_copies() -> None:
            # New bytes every time (an MP4 'free' box at the end), so each check extracts and
            # searches rather than matching the bytes of an earlier one.
            variants = [videos["copy_of_flip"], videos["trim_crop"]]
            with httpx.Client(base_url=stack.api_url, timeout=60) as c:
                n = 0
                while not stop.is_set():
                    vid = f"chk-{n}"
                    data = variants[n % 2] + struct.pack(">I4sI", 12, b"free", n)
                    r = c.post("/videos", files={"file": ("c.mp4", data)}, data={"uuid": vid})
                    if r.status_code == 200:
                        with lock:
                            checked[vid] = root_a
                    ok = (
                        None
                        if r.status_code == 503
                        else (r.status_code == 200 and r.json()["duplicate_for"] == root_a)
                    )
                    tally(ok, f"check {vid}: {r.status_code} {r.text[:200]}")
                    n += 1

        def added_by_checks() -> set[str]:
            with lock:
                return set(checked)

        threads = [
            threading.Thread(target=f, daemon=True)
            for f in (get_known, search_copies, check_copies)
        ]
        for t in threads:
            t.start()
        log = tmp_path / "logs" / "reshard.log"
        try:
            code, dry = reshard(urls, "--dry-run", log=log)
            assert code == 3 and dry["to_move"] >= 12 and set(dry["moves"]) == {"0->2", "1->2"}

            # a run stopped by its limit: what it copied is deleted from the old shards
            code, first = reshard(urls, "--max-moves", "6", log=log)
            assert code == 3 and first["stopped_early"] and first["errors"] == 0, first
            assert first["moved"] + first["skipped_pending"] == 6

            # a run killed with -9 while it copies: copies exist on both shards
            before = set(listing(three, 2))
            with open(log, "ab") as err:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "vdup.cli",
                        "reshard",
                        "--shards",
                        ",".join(urls),
                        "--grace-s",
                        str(GRACE_S),
                        "--workers",
                        "1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            try:
                deadline = time.monotonic() + 60
                while len(set(listing(three, 2)) - before - added_by_checks()) < 4:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.02)
                assert proc.poll() is None
            finally:
                proc.kill()
                proc.wait()
            on_old = set(listing(three, 0)) | set(listing(three, 1))
            both = on_old & set(listing(three, 2))
            assert len(both) >= 4

            # the next run finishes the job, the stuck pending video included
            code, last = reshard(urls, "--pending-older-than-s", "600", log=log)
            assert code == 0 and last["errors"] == 0 and last["skipped_pending"] == 0, last
            assert last["already_there"] >= len(both) and last["moved"] >= 1
            time.sleep(1.0)  # checks keep running on the settled layout
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert not wrong, wrong[:5]
        assert answers["ok"] > 50, answers

        # -- every acknowledged video exactly once, on its 3-shard owner, and findable
        everything = roots | checked
        api_get = retrying(api.get)
        per_shard = [listing(three, i) for i in range(3)]
        seen = [v for ids in per_shard for v in ids]
        assert sorted(seen) == sorted(everything)
        assert all(placement(v, 3) == i for i, ids in enumerate(per_shard) for v in ids)
        assert len(per_shard[2]) >= 12
        assert three.get_state(stuck) == (stuck_rec, True)
        for s in SEEDS:
            assert three.search(scene(s, copy=1), 32, 20)[0].video_id == f"s{s}"
        for vid, root in everything.items():
            assert api_get(f"/videos/{vid}").json()["root_id"] == root, vid
        fresh = videos["flip"] + struct.pack(">I4sI", 12, b"free", 1)
        r = retrying(api.post)(
            "/videos", files={"file": ("new.mp4", fresh)}, data={"uuid": "after"}
        )
        assert r.json()["duplicate_for"] == root_a, r.text
        code, dry = reshard(urls, "--dry-run", log=log)
        assert code == 0 and dry["to_move"] == 0
        three.close()
