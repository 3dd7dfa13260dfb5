"""The replicated tier, with real processes on loopback: a real PostgreSQL truth, 2 shards x 2
replica processes (``vdup indexer`` with VDUP_DATABASE_URL), and the checker over
``ReplicatedCatalog``. Kill -9 of a replica mid-stream fails no check and loses nothing; a
rolling restart of every replica fails no check; concurrent copies of one new video end as one
original and one copy."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import httpx
import numpy as np
import pytest

from support.shards import FeatureExtractor, payload
from vdup.checker import DuplicateChecker
from vdup.devstack.stack import LocalStack, ServiceProcess, shard_process
from vdup.indexer.placement import placement
from vdup.indexer.replicated import ReplicatedCatalog, StaticReplicas
from vdup.indexer.truth import Truth
from vdup.matching.decide import DecisionConfig

pytestmark = pytest.mark.slow  # replica processes

SHARDS, REPLICAS = 2, 2


class Replicas:
    """SHARDS x REPLICAS replica processes; ``procs[i][r]`` is replica r of shard i."""

    def __init__(self, root, database_url: str) -> None:
        env = {"VDUP_DATABASE_URL": database_url, "VDUP_INDEXER_SHARDS": str(SHARDS)}
        ports = iter(distinct_ports(SHARDS * REPLICAS))
        self.procs: list[list[ServiceProcess]] = [
            [
                shard_process(
                    i,
                    next(ports),
                    root / f"shard-{i}-r{r}",
                    log_path=root / "logs" / f"shard-{i}-r{r}.log",
                    env=env,
                    grace_s=30,
                )
                for r in range(REPLICAS)
            ]
            for i in range(SHARDS)
        ]

    def url(self, i: int, r: int) -> str:
        return self.procs[i][r].ready_url.removesuffix("/readyz")

    @property
    def entries(self) -> list[str]:
        return ["|".join(self.url(i, r) for r in range(REPLICAS)) for i in range(SHARDS)]

    def all(self) -> list[ServiceProcess]:
        return [p for group in self.procs for p in group]

    def start(self) -> Replicas:
        for p in self.all():
            p.start()
        for p in self.all():
            p.wait_ready(60)
        return self

    def stop(self) -> None:
        for p in self.all():
            p.stop()


@pytest.fixture
def tier(tmp_path, database_url):
    truth = Truth(database_url)
    truth.upgrade()
    replicas = Replicas(tmp_path, database_url).start()
    catalog = ReplicatedCatalog(
        Truth(database_url), StaticReplicas(replicas.entries), timeout_s=5.0
    )
    try:
        yield truth, replicas, catalog
    finally:
        catalog.close()
        replicas.stop()
        truth.close()


class NearCopyOf(FeatureExtractor):
    """Features of ``source`` with a little noise of their own, for any other payload."""

    def __init__(self, source: bytes) -> None:
        self.source = source

    def extract(self, data: bytes):
        f = super().extract(self.source)
        if data == self.source:
            return f
        rng = np.random.default_rng(len(data))
        frames = f.frames + 0.05 * rng.standard_normal(f.frames.shape).astype(np.float32)
        frames /= np.linalg.norm(frames, axis=1, keepdims=True)
        return dataclasses.replace(
            f, frames=frames, flipped=frames[:, ::-1].copy(), sha256=data.hex()
        )


def checker_over(catalog) -> DuplicateChecker:
    return DuplicateChecker(FeatureExtractor(), catalog, DecisionConfig())


def applied(url: str) -> int:
    return int(httpx.get(url + "/readyz", timeout=5).json().get("applied", -1))


def test_checks_over_replicas_name_the_original_and_read_their_own_writes(tier):
    truth, _, catalog = tier
    chk = checker_over(catalog)
    assert not chk.check(payload(1), "o1").record.is_duplicate
    # the copy right after: the replicas must have applied o1 before they answer
    copy = chk.check(payload(1, copy=1), "c1")
    assert copy.record.is_duplicate and copy.record.duplicate_for == "o1"
    assert truth.get("c1").duplicate_for == "o1"
    assert catalog.delete("o1") and truth.get("o1") is None


def test_kill_9_of_a_replica_mid_stream_fails_no_check_and_loses_nothing(tier):
    truth, replicas, catalog = tier
    chk = checker_over(catalog)
    failures, acked = [], []
    for n in range(40):
        if n == 15:
            replicas.procs[0][0].kill()  # SIGKILL, no final snapshot
        if n == 28:
            replicas.procs[0][0].start()  # rejoins, catches up
        seed = 100 + n // 2
        try:
            r = chk.check(payload(seed, copy=n % 2), f"v{n}")
            acked.append(r.record)
        except Exception as exc:  # noqa: BLE001 - counted, the assertion names them
            failures.append(f"v{n}: {exc}")
    assert failures == []
    for rec in acked:
        assert truth.get(rec.video_id) == rec
    copies = [r for r in acked if r.video_id[1:].isdigit() and int(r.video_id[1:]) % 2]
    assert all(r.is_duplicate and r.duplicate_for == f"v{int(r.video_id[1:]) - 1}" for r in copies)
    replicas.procs[0][0].wait_ready(60)
    head = truth.head()
    deadline = time.monotonic() + 30
    while applied(replicas.url(0, 0)) < head:
        assert time.monotonic() < deadline, "the restarted replica did not catch up"
        time.sleep(0.2)
    stats = httpx.get(replicas.url(0, 0) + "/v1/stats", timeout=5).json()
    assert stats["videos"] == sum(1 for r in acked if placement(r.video_id, SHARDS) == 0)


def test_a_rolling_restart_of_every_replica_fails_no_check(tier):
    truth, replicas, catalog = tier
    chk = checker_over(catalog)
    stop = threading.Event()
    failures: list[str] = []
    done = [0]

    def stream():
        n = 0
        while not stop.is_set():
            try:
                chk.check(payload(500 + n // 2, copy=n % 2), f"r{n}")
                done[0] += 1
            except Exception as exc:  # noqa: BLE001 - counted below
                failures.append(f"r{n}: {exc}")
            n += 1

    t = threading.Thread(target=stream)
    t.start()
    try:
        for p in replicas.all():  # one at a time, as helm upgrade rolls a StatefulSet
            p.stop()
            p.start().wait_ready(60)
    finally:
        stop.set()
        t.join(60)
    assert failures == [] and done[0] > 0


def test_two_concurrent_copies_of_a_new_video_end_as_one_original_and_one_copy(tier):
    truth, replicas, _ = tier
    # two "API processes": their own catalog clients, pools and checker locks
    apis = [
        checker_over(ReplicatedCatalog(Truth(truth.url), StaticReplicas(replicas.entries)))
        for _ in range(2)
    ]
    try:
        for rep in range(50):
            barrier = threading.Barrier(2)
            results = {}

            def run(k, rep=rep, barrier=barrier, results=results):
                barrier.wait()
                results[k] = apis[k].check(payload(2000 + rep, copy=k), f"race{rep}-{k}").record

            threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            originals = [r for r in results.values() if not r.is_duplicate]
            assert len(originals) == 1, (rep, results)
            copy = next(r for r in results.values() if r.is_duplicate)
            assert copy.duplicate_for == originals[0].video_id
    finally:
        for api in apis:
            api.catalog.close()


def test_review_lives_in_the_truth_and_the_replicas_follow_a_verdict(tier):
    from vdup.catalog.review import QueueQuery, Verdict

    truth, _, catalog = tier
    chk = DuplicateChecker(FeatureExtractor(), catalog, DecisionConfig(), review=catalog)
    chk.check(payload(7), "orig")
    assert chk.check(payload(7, copy=1), "copy").record.duplicate_for == "orig"
    assert [i.record.video_id for i in catalog.review_queue(QueueQuery())] == ["copy"]
    ev = catalog.evidence("copy")
    assert ev.document["matched_video"] == "orig" and ev.document["features"]
    out = catalog.apply_verdict(Verdict("copy", "not_duplicate", who="alice"))
    assert out.record.root_id == "copy" and truth.get("copy").root_id == "copy"
    assert catalog.negatives(["copy"]) == {"copy": frozenset({"orig"})}
    # the replicas applied the update: a candidate named "copy" now carries root "copy"
    head = truth.head()
    found = catalog.search(FeatureExtractor().extract(payload(7, copy=2)), 32, 20)
    assert getattr(catalog._searched, "head", 0) >= head
    assert {c.video_id: c.root_id for c in found}["copy"] == "copy"
    # a re-upload of the overturned copy (closer to it than to orig) is not matched to orig
    chk.extractor = NearCopyOf(payload(7, copy=1))
    again = chk.check(b"re-upload", "copy2").record
    assert again.is_duplicate and again.duplicate_for == "copy", again
    assert [e.video_id for e in catalog.audit()] == ["copy"]
    assert catalog.delete("copy2") and catalog.evidence("copy2") is None


def test_a_stalled_replica_is_skipped_within_the_deadline(tier, database_url):
    truth, replicas, _ = tier
    quick = ReplicatedCatalog(Truth(database_url), StaticReplicas(replicas.entries), timeout_s=1.0)
    chk = checker_over(quick)
    chk.check(payload(9), "s0")
    stalled = [replicas.procs[i][0] for i in range(SHARDS)]
    for p in stalled:
        os.kill(p.pid, signal.SIGSTOP)  # alive, port open, answers nothing
    try:
        for n in range(4):  # rotation sends some searches to the stalled ones first
            t0 = time.monotonic()
            r = chk.check(payload(9, copy=n + 1), f"s{n + 1}")
            assert r.record.duplicate_for == "s0"
            assert time.monotonic() - t0 < 8, "a stalled replica held the check"
    finally:
        for p in stalled:
            os.kill(p.pid, signal.SIGCONT)
        quick.close()


def test_with_postgresql_down_checks_answer_503_and_resume_by_themselves(tmp_path, videos):
    from fastapi.testclient import TestClient

    from support.postgres import fresh_database, running_server
    from vdup.api.app import create_app
    from vdup.settings import Settings

    with running_server() as server, fresh_database(server) as url:
        Truth(url).upgrade()
        replicas = Replicas(tmp_path, url).start()
        catalog = ReplicatedCatalog(Truth(url, timeout_s=2.0), StaticReplicas(replicas.entries))
        chk = DuplicateChecker(FeatureExtractor(), catalog, DecisionConfig(), review=catalog)
        settings = Settings(data_dir=tmp_path / "api")
        try:
            with TestClient(
                create_app(settings, checker=chk), raise_server_exceptions=False
            ) as client:

                def upload(vid, data):
                    files = {"file": (f"{vid}.mp4", data, "video/mp4")}
                    return client.post("/videos", files=files, data={"uuid": vid})

                assert upload("p0", payload(11)).status_code == 200
                server.stop()
                r = upload("p1", payload(11, copy=1))
                assert r.status_code == 503 and r.headers["Retry-After"], r.text
                assert r.json()["error"] == "unavailable"
                server.start()
                deadline = time.monotonic() + 30
                while (r := upload("p1", payload(11, copy=1))).status_code == 503:
                    assert time.monotonic() < deadline, "the service did not resume"
                    time.sleep(0.5)
                assert r.status_code == 200 and r.json()["duplicate_for"] == "p0", r.text
                assert client.get("/videos/p0").status_code == 200  # nothing acknowledged lost
        finally:
            catalog.close()
            replicas.stop()


def test_dev_subset_decisions_over_replicas_match_the_embedded_mode(
    tmp_path, tier, extractor, dev_manifest
):
    from pathlib import Path

    from support.shards import Cached
    from vdup.catalog.local import LocalCatalog
    from vdup.evaluate import read_manifest, resolve_link

    _, _, catalog = tier
    rows = read_manifest(dev_manifest)[: int(os.environ.get("VDUP_DEV_ROWS", "40"))]
    videos = [(r.uuid, Path(resolve_link(r.link, dev_manifest)).read_bytes()) for r in rows]
    cached = Cached(extractor)
    local = DuplicateChecker(cached, LocalCatalog(tmp_path / "one"), DecisionConfig())
    replicated = DuplicateChecker(cached, catalog, DecisionConfig())
    try:
        want = [_decision(local.check(data, vid).to_response()) for vid, data in videos]
        got = [_decision(replicated.check(data, vid).to_response()) for vid, data in videos]
        assert got == want
        assert sum(r[0] for r in got) >= 5
    finally:
        local.catalog.close()


def _decision(answer: dict) -> tuple:
    """What a decision is: duplicate or not, of which root, through which video. (Scores may
    differ in the last digits: each of two shards returns its own k nearest rows, so a
    candidate's retrieval score, one of the model's inputs, can be found a little higher.)"""
    return answer["is_duplicate"], answer["duplicate_for"], answer["matched_video"]


def test_two_api_processes_settle_concurrent_copies_through_the_database():
    """The race across two real API processes (uvicorn, real models) over the local platform
    stack: a new video and its mirrored copy, sent to both at once, end as one original and one
    copy, 50 times out of 50. Each round deletes its pair, so the next one is new content again
    (generated clips of different seeds can look alike to the model)."""
    from concurrent.futures import ThreadPoolExecutor

    from support.media import make_video
    from support.postgres import require_postgres, server_root

    require_postgres()
    with server_root() as root:
        data = root / "data"
        ports = distinct_ports(7)  # picked together: PostgreSQL's own pick could meet a shard's
        stack = LocalStack(
            2,
            replicas=2,
            triton=False,
            data_root=data,
            api_port=ports[0],
            shard_ports=ports[1:5],
            postgres_port=ports[5],
        )
        with stack:
            second = ServiceProcess(
                "api-2",
                [
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port := ports[6]),
                    "--data",
                    str(data / "api-2"),
                ],
                f"http://127.0.0.1:{port}/readyz",
                env=dict(stack.api.extra_env),
                log_path=data / "logs" / "api-2.log",
            )
            second.start().wait_ready(120)
            urls = [stack.api_url, f"http://127.0.0.1:{port}"]
            clips = [make_video(1), make_video(1, hflip=True, audio_seed=21)]
            try:
                with httpx.Client(timeout=120) as http, ThreadPoolExecutor(2) as pool:
                    for rep in range(50):

                        def post(k, rep=rep):
                            files = {"file": (f"v{rep}-{k}.mp4", clips[k], "video/mp4")}
                            r = http.post(
                                f"{urls[k]}/videos", files=files, data={"uuid": f"v{rep}-{k}"}
                            )
                            assert r.status_code == 200, r.text
                            return r.json()

                        answers = list(pool.map(post, range(2)))
                        originals = [a for a in answers if not a["is_duplicate"]]
                        assert len(originals) == 1, (rep, answers)
                        copy = next(a for a in answers if a["is_duplicate"])
                        assert copy["duplicate_for"] == originals[0]["uuid"], (rep, answers)
                        for k in range(2):
                            assert http.delete(f"{urls[0]}/videos/v{rep}-{k}").status_code == 204
            finally:
                second.stop()


def distinct_ports(n: int) -> list[int]:
    """``n`` different free loopback ports, held open together while they are chosen."""
    import socket

    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
