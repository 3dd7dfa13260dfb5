"""Two copies of one new video checked at the same moment on two API replicas (two checkers,
each with its own ShardedCatalog and its own in-process lock) against two real shard processes:
never two originals, and every answer matches what the catalog stores."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.shards import FeatureExtractor, payload, record, scene
from vdup.catalog.types import StoredRows
from vdup.checker import DuplicateChecker
from vdup.indexer.client import ShardedCatalog, placement
from vdup.indexer.races import settle
from vdup.matching.decide import DecisionConfig

pytestmark = pytest.mark.slow  # shard processes


class Replica:
    """One API replica: a checker over its own ShardedCatalog. ``gate`` (if set) runs after the
    checker's search and before its add: the window in which the race happens."""

    def __init__(self, urls: list[str]) -> None:
        self.catalog = ShardedCatalog(urls)
        self.gate = None
        outer = self

        class Gated:
            def __getattr__(self, name):
                return getattr(outer.catalog, name)

            def search(self, *args, **kwargs):
                found = outer.catalog.search(*args, **kwargs)
                if outer.gate is not None:
                    outer.gate()
                return found

        self.checker = DuplicateChecker(FeatureExtractor(), Gated(), DecisionConfig())

    def check(self, data: bytes, vid: str) -> dict:
        return self.checker.check(data, vid).to_response()


@pytest.fixture
def replicas(shards):
    a, b = Replica(shards.urls), Replica(shards.urls)
    yield a, b
    a.catalog.close()
    b.catalog.close()


def _assert_one_original(a_resp: dict, b_resp: dict, catalog: ShardedCatalog) -> None:
    originals = [r for r in (a_resp, b_resp) if not r["is_duplicate"]]
    assert len(originals) == 1, (a_resp, b_resp)
    root = originals[0]["uuid"]
    copy = b_resp if originals[0] is a_resp else a_resp
    assert copy["duplicate_for"] == root
    for resp in (a_resp, b_resp):
        stored = catalog.get_state(resp["uuid"])
        assert stored is not None and stored[1] is False  # settled, not pending
        assert stored[0].is_duplicate == resp["is_duplicate"]
        assert stored[0].duplicate_for == resp["duplicate_for"]
        assert stored[0].root_id == (resp["duplicate_for"] or resp["uuid"])


def test_both_search_before_either_adds(replicas):
    """The worst case, forced: both checks see an empty catalog, both decide 'original'."""
    a, b = replicas
    pairs = [(f"a{s}", f"b{s}") for s in range(6)] + [(f"z{s}", f"y{s}") for s in range(6, 9)]
    placements = set()
    for s, (ida, idb) in enumerate(pairs, start=100):
        both_searched = threading.Barrier(2)
        a.gate = b.gate = lambda gate=both_searched: gate.wait(timeout=10)
        with ThreadPoolExecutor(2) as pool:
            fa = pool.submit(a.check, payload(s, copy=1), ida)
            fb = pool.submit(b.check, payload(s, copy=2), idb)
            ra, rb = fa.result(), fb.result()
        _assert_one_original(ra, rb, a.catalog)
        placements.add((placement(ida, 2), placement(idb, 2)))
    assert len(placements) >= 3  # same shard and different shards were both exercised
    assert all(s["pending"] == 0 for s in a.catalog.stats()["shards"])


def test_one_settles_before_the_other_adds(replicas):
    """A decides, adds and settles while B, which searched at the same time, waits to add."""
    a, b = replicas
    for s in range(200, 203):
        both_searched, a_done = threading.Barrier(2), threading.Event()
        a.gate = lambda gate=both_searched: gate.wait(timeout=10)
        b.gate = lambda gate=both_searched, done=a_done: (
            gate.wait(timeout=10),
            done.wait(timeout=10),
        )

        def run_a(s=s, a_done=a_done):
            try:
                return a.check(payload(s, copy=1), f"first{s}")
            finally:
                a_done.set()

        with ThreadPoolExecutor(2) as pool:
            fa = pool.submit(run_a)
            fb = pool.submit(b.check, payload(s, copy=2), f"second{s}")
            ra, rb = fa.result(), fb.result()
        _assert_one_original(ra, rb, a.catalog)
        assert not ra["is_duplicate"] and rb["duplicate_for"] == f"first{s}"


def test_unforced_concurrent_checks_of_many_videos(replicas):
    a, b = replicas
    a.gate = b.gate = None
    seeds = list(range(300, 310))
    with ThreadPoolExecutor(4) as pool:
        fa = [pool.submit(a.check, payload(s, copy=1), f"p{s}") for s in seeds]
        fb = [pool.submit(b.check, payload(s, copy=2), f"q{s}") for s in seeds]
        for x, y in zip(fa, fb):
            _assert_one_original(x.result(), y.result(), a.catalog)


@pytest.mark.parametrize("order", ["earlier_first", "later_first", "together"])
def test_settle_of_two_pending_originals(shards, order):
    """Both added pending before either settles: the earlier (created_at, id) stays original,
    whichever settles first and even when both settle at once."""
    cat = ShardedCatalog(shards.urls)
    cfg = DecisionConfig()
    try:
        early, late = record("early", created_at=10.0), record("late", created_at=11.0)
        fe, fl = scene(400, copy=1), scene(400, copy=2)
        cat._add(early, StoredRows.from_features(fe), pending=True)
        cat._add(late, StoredRows.from_features(fl), pending=True)
        jobs = [(early, fe), (late, fl)]
        if order == "later_first":
            jobs.reverse()
        if order == "together":
            with ThreadPoolExecutor(2) as pool:
                results = list(pool.map(lambda j: settle(cat, j[0], j[1], cfg, 32), jobs))
        else:
            results = [settle(cat, r, f, cfg, 32) for r, f in jobs]
        final = {r.video_id: r for r in results}
        assert not final["early"].is_duplicate and final["early"].root_id == "early"
        assert final["late"].is_duplicate and final["late"].duplicate_for == "early"
        assert cat.get("late").root_id == "early" and cat.get_state("early")[1] is False
    finally:
        cat.close()
