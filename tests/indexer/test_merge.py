"""merge_candidates and placement: deterministic whatever the shard count or answer order."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from vdup.indexer.client import merge_candidates, placement
from vdup.matching.decide import Candidate


def c(vid: str, score: float) -> Candidate:
    z = np.zeros((1, 512), np.float32)
    return Candidate(vid, vid, z, np.zeros(1, np.int8), np.zeros(1, np.float32),
                     np.zeros((0, 128), np.float32), 1.0, score)


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
    assert placement("00000000-0000-0000-0000-000000000000", 2) == 1  # SHA-1, fixed forever
    assert placement("orig", 4) == placement("orig", 4)
    counts = Counter(placement(f"video-{i}", 4) for i in range(8000))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 1800
