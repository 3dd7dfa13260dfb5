"""merge_candidates and placement: deterministic whatever the shard count or answer order."""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter

import numpy as np

from vdup.indexer.client import jump_hash, merge_candidates, placement
from vdup.matching.decide import Candidate


def c(vid: str, score: float) -> Candidate:
    z = np.zeros((1, 512), np.float32)
    return Candidate(
        vid,
        vid,
        z,
        np.zeros(1, np.int8),
        np.zeros(1, np.float32),
        np.zeros((0, 128), np.float32),
        1.0,
        score,
    )


def ids(cands):
    return [x.video_id for x in cands]


def test_best_scores_first_and_ties_by_video_id():
    a = [c("v9", 0.9), c("v3", 0.7), c("v1", 0.5)]
    b = [c("v8", 0.9), c("v2", 0.7), c("v0", 0.1)]
    assert ids(merge_candidates([a, b], 10)) == ["v8", "v9", "v2", "v3", "v1", "v0"]
    assert ids(merge_candidates([a, b], 3)) == ["v8", "v9", "v2"]


def test_the_order_of_the_shards_answers_never_changes_the_result():
    shards = [[c("x", 0.8), c("b", 0.6)], [c("a", 0.8), c("d", 0.6)], [c("c", 0.6)], []]
    results = {tuple(ids(merge_candidates(list(p), 4))) for p in itertools.permutations(shards)}
    assert results == {("a", "x", "b", "c")}


def test_a_video_listed_by_two_shards_is_kept_once_with_its_best_score():
    merged = merge_candidates([[c("v", 0.4), c("w", 0.5)], [c("v", 0.9)]], 5)
    assert ids(merged) == ["v", "w"] and merged[0].retrieval == 0.9


def test_no_candidates_anywhere():
    assert merge_candidates([[], []], 20) == []


def test_placement_is_stable_and_spreads_ids_evenly():
    # Jump hash of SHA-1's first 8 bytes, fixed forever: stored videos depend on it.
    zero = "00000000-0000-0000-0000-000000000000"
    assert [placement(zero, n) for n in range(1, 11)] == [0, 0, 0, 0, 4, 4, 4, 4, 4, 4]
    assert [placement("orig", n) for n in range(1, 11)] == [0, 0, 0, 3, 4, 4, 4, 4, 8, 8]
    counts = Counter(placement(f"video-{i}", 4) for i in range(8000))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 1800


def test_jump_hash_matches_the_published_implementations():
    # Vectors of the reference C++ code, as published with its Rust, Go and Python ports.
    assert jump_hash(256, 1024) == 520
    assert [jump_hash(k, 60) for k in (0, 1, 2)] == [0, 55, 46]
    assert jump_hash(42, 57) == 43 and jump_hash(0xDEAD10CC, 666) == 361
    assert jump_hash(0xDEAD10CC, 1) == 0


def test_growing_2_to_3_shards_moves_a_third_of_the_videos_and_only_to_the_new_shard():
    rng = random.Random(7)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(30_000)]
    moved = [(placement(v, 2), placement(v, 3)) for v in ids if placement(v, 2) != placement(v, 3)]
    assert abs(len(moved) / len(ids) - 1 / 3) < 0.015
    assert {new for _, new in moved} == {2} and {old for old, _ in moved} == {0, 1}
    for n in range(1, 9):  # every growth by one shard: stay, or go to the new shard
        assert all(placement(v, n + 1) in (placement(v, n), n) for v in ids[:2000])
