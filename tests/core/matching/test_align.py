"""Temporal alignment and motion comparison on synthetic descriptor sequences (pure numpy)."""

import numpy as np
import pytest
from synthetic_descriptors import Scene, edit_vector, sample

from vdup.matching.align import Alignment, align, dynamics

MOTION = 0.6  # a scene that moves: frames 0.5 s apart ~0.985 alike, 10 s apart ~0.73


def grid(start: float, stop: float, step: float = 0.5) -> np.ndarray:
    return np.arange(start, stop, step, dtype=np.float32)


def test_a_copy_aligns_on_the_diagonal():
    scene = Scene(1, motion=MOTION)
    t = grid(0, 10)
    ref = sample(scene, t)
    query = sample(scene, t, edit=edit_vector(5, 0.5), noise=0.3, seed=3)
    a = align(query @ ref.T, t, t)
    assert a.speed == 1.0 and abs(a.offset_s) <= 0.25
    assert a.inliers == len(t) and a.query_coverage == 1.0
    assert all(abs(i - j) <= 1 for i, j in a.pairs)
    assert 0.8 < a.score < 0.95


def test_a_trimmed_copy_finds_its_offset():
    scene = Scene(2, motion=MOTION, duration_s=16)
    tr = grid(0, 15)
    ref = sample(scene, tr)
    tq = grid(0, 6)  # the query is the reference from 4 s to 10 s, sampled at other moments
    query = sample(scene, tq + 4.2, noise=0.2, seed=4)
    a = align(query @ ref.T, tq, tr)
    assert a.speed == 1.0 and abs(a.offset_s - 4.2) <= 0.5
    assert a.inliers == len(tq)
    assert a.ref_span_s[0] >= 3.5 and a.ref_span_s[1] <= 11.0


@pytest.mark.parametrize("speed", [1.5, 2 / 3, 2.0])
def test_a_speed_change_tilts_the_line(speed):
    # a lively scene: within the 1.25 s tolerance a slow one fits a compromise line as well
    scene = Scene(3, motion=1.5, duration_s=20)
    tr = grid(0, 18)
    ref = sample(scene, tr)
    tq = grid(0, 17 / speed)  # query time t shows reference time speed * t
    query = sample(scene, speed * tq, noise=0.2, seed=5)
    a = align(query @ ref.T, tq, tr)
    assert a.speed == pytest.approx(speed)
    assert abs(a.offset_s) <= 0.6
    assert a.inliers >= 0.9 * len(tq)


def test_still_content_keeps_speed_one():
    """A still shot matches every moment equally well: no evidence for a speed change."""
    scene = Scene(4, motion=0.0)
    tr = grid(0, 8)
    tq = grid(0, 16)  # twice as long: a compressing line would cover more query frames
    a = align(sample(scene, tq, noise=0.2, seed=1) @ sample(scene, tr, noise=0.2, seed=2).T, tq, tr)
    assert a.speed == 1.0


def test_a_partial_copy_is_a_short_line_inside_other_footage():
    original = Scene(5, motion=MOTION, duration_s=4)
    other = Scene(6, motion=MOTION, duration_s=30)
    tr = grid(0, 4, 0.25)
    ref = sample(original, tr)
    tq = grid(0, 24)
    inside = (tq >= 10) & (tq < 14)
    query = sample(other, tq)
    query[inside] = sample(original, tq[inside] - 10, noise=0.2, seed=7)
    a = align(query @ ref.T, tq, tr)
    assert abs(a.offset_s - (-10)) <= 0.5
    assert a.query_span_s[0] >= 9.5 and a.query_span_s[1] <= 14.0
    assert a.inliers == int(inside.sum())


def test_a_copy_moves_like_its_original_whatever_the_static_edit():
    scene = Scene(7, motion=MOTION)
    t = grid(0, 10)
    ref = sample(scene, t)
    heavy = sample(scene, t, edit=edit_vector(8, 1.5), noise=0.3, seed=8)  # a big overlay
    a = align(heavy @ ref.T, t, t)
    d = dynamics(heavy, ref, t, t, a)
    assert a.score < 0.7  # the edit hides much of the frame...
    assert d.agreement > 0.5 and d.energy > 0.15  # ...but not how the video moves
    assert d.frames == len(t)


def test_another_recording_of_the_same_room_looks_alike_but_moves_otherwise():
    room = Scene(9, motion=MOTION)
    other_take = Scene(10, motion=MOTION, static=room.static)
    t = grid(0, 10)
    a = align(sample(other_take, t) @ sample(room, t).T, t, t)
    d = dynamics(sample(other_take, t), sample(room, t), t, t, a)
    assert a.score > 0.8  # as alike, frame by frame, as a lightly edited copy
    assert abs(d.agreement) < 0.2 and d.energy > 0.12


def test_a_still_image_has_no_motion_to_compare():
    still = Scene(11, motion=0.0)
    t = grid(0, 6)
    x = sample(still, t)
    d = dynamics(x, x, t, t, align(x @ x.T, t, t))
    assert d.energy < 1e-3


def test_empty_and_unmatched_inputs():
    assert align(np.zeros((0, 3), np.float32), np.zeros(0), np.arange(3.0)) == Alignment.empty()
    unrelated = np.full((4, 5), 0.1, np.float32)  # below the pair floor everywhere
    a = align(unrelated, np.arange(4.0), np.arange(5.0))
    assert a.inliers == 0 and a.score == 0.0
    d = dynamics(
        np.eye(4, 8, dtype=np.float32),
        np.eye(5, 8, dtype=np.float32),
        np.arange(4.0),
        np.arange(5.0),
        a,
    )
    assert d.frames == 0 and d.agreement == 0.0
