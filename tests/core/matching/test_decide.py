"""The decision's mechanics on synthetic descriptors: evidence, ranking, roots and paths.

The shipped model's quality is measured on real media (tests/core/test_checker.py, the dev
benchmark, docs/benchmarks.md); here small hand-written models make each rule of ``decide``
visible: which candidate answers, which root it names, which candidates are aligned at all,
and when the soundtrack carried the decision.
"""

import numpy as np
from synthetic_descriptors import (
    Scene,
    candidate,
    edit_vector,
    features,
    sample,
    soundtrack,
)

from vdup.features.types import AUDIO_DIM
from vdup.matching.decide import DecisionConfig, audio_similarity, decide
from vdup.matching.evidence import COLUMN, FEATURE_NAMES
from vdup.matching.model import DecisionModel, Tree

MOTION = 0.6
T = np.arange(0, 10, 0.5, dtype=np.float32)
YES, NO = 0.99, 0.01


def model_of(spec, threshold=0.5) -> DecisionModel:
    """A one-tree model from a nested spec: a leaf probability, or (feature, threshold,
    spec when <= threshold, spec when >)."""
    feature, thresh, left, right, value = [], [], [], [], []

    def add(node) -> int:
        i = len(feature)
        feature.append(-1), thresh.append(0.0), left.append(-1), right.append(-1)
        value.append(0.0)
        if isinstance(node, float):
            value[i] = float(np.log(node / (1 - node)))
        else:
            name, t, lo, hi = node
            feature[i], thresh[i] = COLUMN[name], t
            left[i] = add(lo)
            right[i] = add(hi)
        return i

    add(spec)
    tree = Tree(
        np.array(feature, np.int32),
        np.array(thresh),
        np.array(left, np.int32),
        np.array(right, np.int32),
        np.array(value),
        depth=len(feature),
    )
    return DecisionModel(FEATURE_NAMES, threshold, 0.0, (tree,))


#: Moving videos must move alike; a borderline look-alike needs its soundtrack in step; still
#: content must single one original out (margin).
RULES = model_of(
    (
        "confidence",
        0.4,
        NO,
        (
            "motion_energy",
            0.05,
            ("margin", 0.25, NO, ("confidence", 0.75, NO, YES)),
            (
                "motion_agreement",
                0.3,
                NO,
                ("confidence", 0.5, ("audio_aligned", 0.8, NO, 0.9), YES),
            ),
        ),
    )
)
CFG = DecisionConfig(model=RULES, background=np.zeros((0, 512), np.float32))


def video(scene, edit=None, noise=0.0, seed=0, t=T, audio=None, offset=0.0):
    return features(sample(scene, t + offset, edit=edit, noise=noise, seed=seed), t, audio)


def test_an_edited_copy_is_a_duplicate_of_its_original():
    scene = Scene(1, motion=MOTION)
    original = candidate("orig", video(scene))
    unrelated = candidate("other", video(Scene(2, motion=MOTION)))
    query = video(scene, edit=edit_vector(3, 0.8), noise=0.3, seed=4, offset=0.2)
    d = decide(query, [unrelated, original], CFG)
    assert d.is_duplicate and d.duplicate_for == "orig" and d.matched_video == "orig"
    assert d.path == "visual"
    match = next(m for m in d.candidates if m.video_id == "orig")
    assert match.evidence[COLUMN["motion_agreement"]] > 0.5  # the two move alike
    assert d.query_segment_s is not None and d.query_segment_s[1] >= 9.0


def test_another_recording_of_the_same_room_is_not_a_duplicate():
    room = Scene(5, motion=MOTION)
    original = candidate("orig", video(room))
    other_take = video(Scene(6, motion=MOTION, static=room.static))
    d = decide(other_take, [original], CFG)
    match = d.candidates[0]
    assert match.confidence > 0.8  # frame by frame it looks like a copy...
    assert match.evidence[COLUMN["motion_agreement"]] < 0.3  # ...but it moves otherwise
    assert match.probability < 0.5
    assert not d.is_duplicate


def test_same_audio_over_different_visuals_is_not_a_duplicate():
    track = soundtrack(7, 19)
    original = candidate("orig", video(Scene(8, motion=MOTION), audio=track))
    trending = video(Scene(9, motion=MOTION), audio=track)
    d = decide(trending, [original], CFG)
    assert d.candidates[0].audio > 0.99
    assert not d.is_duplicate


def test_the_same_soundtrack_confirms_a_borderline_visual_match():
    scene = Scene(10, motion=MOTION)
    track = soundtrack(11, 19)
    original = candidate("orig", video(scene, audio=track))
    heavy = video(scene, edit=edit_vector(12, 1.7), noise=0.5, seed=13, audio=track)
    d = decide(heavy, [original], CFG)
    m = d.candidates[0]
    assert 0.4 < m.confidence < 0.5 and m.audio_aligned > 0.95
    assert d.is_duplicate and d.path == "visual_audio"
    silent_twin = video(scene, edit=edit_vector(12, 1.7), noise=0.5, seed=13)
    assert not decide(silent_twin, [original], CFG).is_duplicate


def test_silence_confirms_nothing():
    silence = np.tile(soundtrack(14, 1), (12, 1))
    assert audio_similarity(silence, silence) == 0.0
    assert audio_similarity(np.zeros((0, AUDIO_DIM), np.float32), soundtrack(1, 4)) == 0.0
    track = soundtrack(15, 12)
    assert audio_similarity(track, track) > 0.99


def test_a_copy_of_a_copy_names_the_root_original():
    scene = Scene(16, motion=MOTION)
    first_copy = candidate(
        "copy1", video(scene, edit=edit_vector(17, 0.6), noise=0.2, seed=1), root_id="orig"
    )
    query = video(scene, edit=edit_vector(17, 0.6), noise=0.2, seed=2)
    d = decide(query, [first_copy], CFG)
    assert d.is_duplicate and d.duplicate_for == "orig" and d.matched_video == "copy1"


def test_copies_of_an_original_matched_directly_are_not_aligned_and_change_nothing():
    """A viral original with many re-uploads: once the original itself is a confirmed match,
    its copies further down the retrieval ranking are skipped; copies ranked above it, and the
    other roots' candidates, are still aligned, and the answer is the one without the copies."""
    scene = Scene(30, motion=MOTION)
    original = candidate("orig", video(scene), retrieval=0.9)
    near = candidate("copy0", video(scene, noise=0.2, seed=40), root_id="orig", retrieval=0.95)
    later = [
        candidate(
            f"copy{i}",
            video(scene, noise=0.2, seed=40 + i),
            root_id="orig",
            retrieval=0.8 - 0.01 * i,
        )
        for i in range(1, 6)
    ]
    other = candidate("other", video(Scene(31, motion=MOTION)), retrieval=0.5)
    query = video(scene, edit=edit_vector(32, 0.8), noise=0.3, seed=33)
    cfg = DecisionConfig(model=RULES, settle_probability=0.9)
    d = decide(query, [*later, other, original, near], cfg)
    assert d.is_duplicate and d.duplicate_for == "orig" and d.matched_video == "orig"
    assert sorted(m.video_id for m in d.candidates) == ["copy0", "orig", "other"]
    alone = decide(query, [original, other], cfg)
    assert (d.matched_video, d.score, d.path) == (alone.matched_video, alone.score, alone.path)


def test_a_direct_match_to_an_original_wins_over_a_copy_of_another_original():
    """Two partial copies can share background footage; the query's own original, matched
    directly, names the answer rather than the root behind the other partial copy."""
    scene = Scene(18, motion=MOTION)
    original = candidate("orig", video(scene, noise=0.3, seed=3))
    other_partial = candidate("partial", video(scene, noise=0.05, seed=4), root_id="elsewhere")
    d = decide(video(scene, noise=0.05, seed=5), [other_partial, original], CFG)
    assert d.duplicate_for == "orig"


def test_a_still_copy_is_a_duplicate_only_when_it_singles_out_one_original():
    still = Scene(19, motion=0.0)
    original = candidate("orig", video(still))
    query = video(still, noise=0.3, seed=6)
    d = decide(query, [original], CFG)
    assert d.candidates[0].evidence[COLUMN["motion_energy"]] < 0.05  # nothing moves
    assert d.candidates[0].evidence[COLUMN["margin"]] > 0.9  # nothing else looks like it
    assert d.is_duplicate and d.duplicate_for == "orig"
    # a second, unrelated upload of the same still template (a feed screenshot, say)
    template_twin = candidate("twin", video(still, noise=0.05, seed=7))
    assert not decide(query, [original, template_twin], CFG).is_duplicate


def test_a_confirmed_match_outranks_a_more_similar_still_one():
    """An overlay onto a screenshot: the template matches another screenshot video better than
    the content matches the original, but only the content moves along."""
    still = Scene(20, motion=0.0)
    scene = Scene(21, motion=MOTION)
    template = candidate("shot", video(still), root_id="shot")
    original = candidate("orig", video(scene))
    whole = sample(still, T, noise=0.2, seed=8)
    content = sample(scene, T, edit=edit_vector(22, 0.9), noise=0.3, seed=9)
    query = features(whole, T, region=content)
    d = decide(query, [template, original], CFG)
    assert d.candidates[0].video_id == "shot"  # the most similar...
    assert d.is_duplicate and d.duplicate_for == "orig"  # ...is not the answer


def test_a_short_original_inside_a_long_video_is_found_from_one_frame():
    clip = Scene(23, motion=MOTION, duration_s=2.5)
    original = candidate(
        "orig", features(sample(clip, np.arange(0, 2.2, 0.2)), np.arange(0, 2.2, 0.2))
    )
    background = Scene(24, motion=2.0, duration_s=40)
    tq = np.arange(0, 34, 1.7, dtype=np.float32)
    desc = sample(background, tq)
    desc[12] = sample(clip, np.array([1.0]), noise=0.1, seed=10)[0]  # ~1 s of the original
    d = decide(features(desc, tq), [original], CFG)
    assert d.is_duplicate and d.duplicate_for == "orig"
    assert d.candidates[0].alignment.inliers == 1


def test_no_candidates_no_duplicate():
    d = decide(video(Scene(25, motion=MOTION)), [], CFG)
    assert not d.is_duplicate and d.score == 0.0 and d.candidates == []


def test_an_operating_threshold_overrides_the_models_own():
    scene = Scene(26, motion=MOTION)
    original = candidate("orig", video(scene))
    query = video(scene, edit=edit_vector(27, 0.8), noise=0.3, seed=28)
    d = decide(query, [original], CFG)
    assert d.is_duplicate and d.score == YES
    strict = DecisionConfig(model=RULES, threshold=0.995)
    assert not decide(query, [original], strict).is_duplicate
