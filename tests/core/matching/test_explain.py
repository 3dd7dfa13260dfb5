"""Evidence for moderators, and the negative list inside the decision."""

from __future__ import annotations

import numpy as np

from vdup.features.types import Thumbnails, VideoFeatures
from vdup.matching.align import Alignment
from vdup.matching.decide import Decision, Match, _unbarred
from vdup.matching.evidence import FEATURE_NAMES
from vdup.matching.explain import MAX_PAIRS, explain


def thumbs(times: list[float], tag: str) -> Thumbnails:
    return Thumbnails(np.array(times, np.float32), tuple(f"{tag}{t:g}".encode() for t in times))


def query(thumbnails: Thumbnails, n: int = 20) -> VideoFeatures:
    f = np.eye(n, 512, dtype=np.float32)
    return VideoFeatures(
        timestamps=np.arange(n, dtype=np.float32),
        frames=f,
        flipped=f,
        region=np.zeros((0, 512), np.float32),
        region_flipped=np.zeros((0, 512), np.float32),
        audio=np.zeros((0, 128), np.float32),
        duration_s=float(n),
        sha256="q",
        thumbnails=thumbnails,
    )


def line(speed: float, offset: float, q: tuple[float, float], r: tuple[float, float]):
    return Alignment(0.9, 10, 0.5, 0.5, 0.95, speed, offset, q, r)


def match(vid: str, root: str, p: float, alignment: Alignment | None = None) -> Match:
    a = alignment or line(1.0, 0.0, (0.0, 1.0), (0.0, 1.0))
    return Match(
        vid,
        root,
        0.9,
        0.0,
        a,
        probability=p,
        evidence=np.arange(len(FEATURE_NAMES), dtype=np.float32),
    )


def test_pairs_follow_the_alignment_line_inside_the_query_segment():
    # the copy is the original's 10..20 s, played from 0 s: t_match = t_query + 10
    a = line(1.0, 10.0, (2.0, 8.0), (12.0, 18.0))
    decision = Decision(
        True,
        "orig",
        "orig",
        0.97,
        "visual",
        (2.0, 8.0),
        (12.0, 18.0),
        [match("orig", "orig", 0.97, a)],
    )
    q = query(thumbs([0, 2, 4, 6, 8, 10, 12], "q"))
    matched = thumbs([0, 5, 11, 13, 15, 17, 19], "m")
    ev = explain(decision, q, matched)
    assert [p.query_t for p in ev.pairs] == [2, 4, 6, 8]
    assert [p.match_t for p in ev.pairs] == [11, 13, 15, 17]  # ties go to the earlier
    for p in ev.pairs:
        assert abs(p.match_t - (p.query_t + 10)) <= 1.0
        assert p.query_jpeg == f"q{p.query_t:g}".encode()
        assert p.match_jpeg == f"m{p.match_t:g}".encode()
    assert ev.matched_video == "orig" and ev.query_segment_s == (2.0, 8.0)
    assert list(ev.features) == list(FEATURE_NAMES)
    doc = ev.document()
    assert doc["pairs"][0] == {"query_t": 2.0, "match_t": 11.0} and "jpeg" not in str(doc)


def test_at_most_max_pairs_spread_over_a_long_segment():
    a = line(1.0, 0.0, (0.0, 60.0), (0.0, 60.0))
    decision = Decision(
        True, "o", "o", 0.99, "visual", (0.0, 60.0), (0.0, 60.0), [match("o", "o", 0.99, a)]
    )
    every = thumbs([float(t) for t in range(0, 61, 5)], "x")
    ev = explain(decision, query(every), every)
    assert len(ev.pairs) == MAX_PAIRS
    assert ev.pairs[0].query_t == 0 and ev.pairs[-1].query_t == 60
    assert all(p.query_t == p.match_t for p in ev.pairs)


def test_an_exact_copy_shows_the_matched_videos_own_frames_on_both_sides():
    decision = Decision(True, "o", "o", 1.0, "exact")
    ev = explain(decision, None, thumbs([0, 1, 2], "o"))
    assert [(p.query_jpeg, p.match_jpeg) for p in ev.pairs] == [
        (b"o0", b"o0"),
        (b"o1", b"o1"),
        (b"o2", b"o2"),
    ]


def test_a_near_miss_explains_its_best_candidate_and_videos_without_thumbnails_have_none():
    a = line(1.0, 0.0, (0.0, 4.0), (0.0, 4.0))
    decision = Decision(False, score=0.4, candidates=[match("near", "near", 0.4, a)])
    ev = explain(decision, query(Thumbnails.empty()), thumbs([0, 2], "n"))
    assert ev.matched_video == "near" and not ev.is_duplicate and ev.pairs == ()
    assert explain(Decision(False), query(thumbs([0], "q")), Thumbnails.empty()).matched_video == ""


def test_the_negative_list_bars_the_overturned_root_unless_it_matches_better():
    # b was ruled "not a copy of a"; a further copy of b's content matches b best
    copy_of_b = [match("a", "a", 0.95), match("b", "b", 0.99)]
    assert [m.video_id for m in _unbarred(copy_of_b, {"b": {"a"}})] == ["b"]
    # a copy of a itself, closer to a than to b, is still a's copy
    copy_of_a = [match("a", "a", 0.995), match("b", "b", 0.98)]
    assert [m.video_id for m in _unbarred(copy_of_a, {"b": {"a"}})] == ["a", "b"]
    # a copy whose root is b bars a too
    through = [match("a", "a", 0.9), match("c", "b", 0.97)]
    assert [m.video_id for m in _unbarred(through, {"b": {"a"}})] == ["c"]
    assert _unbarred(copy_of_b, {}) == copy_of_b
