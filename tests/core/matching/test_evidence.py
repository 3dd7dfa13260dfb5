"""Evidence vectors: the soundtrack in step with the frames, and the shape of what a model sees."""

import numpy as np
from synthetic_descriptors import Scene, candidate, features, mirror, sample, soundtrack

from vdup.matching.align import Alignment, align
from vdup.matching.evidence import (
    AUDIO_COLUMNS,
    COLUMN,
    FEATURE_NAMES,
    align_views,
    aligned_audio,
    without_audio,
)

T = np.arange(0, 10, 0.5, dtype=np.float32)


def line(speed=1.0, offset=0.0, span=(0.0, 9.5)):
    return Alignment(0.9, 10, 1.0, 1.0, 0.9, speed, offset, span, span)


def test_a_soundtrack_matches_in_step_only_where_the_frames_say_the_videos_meet():
    track = soundtrack(1, 24)  # 12 s of windows, 0.5 s apart
    trimmed = track[4:]  # the copy starts 2 s into the original
    assert aligned_audio(trimmed, track, line(offset=2.0)) > 0.99
    # the same sound, but the frames put the copy elsewhere in the original: not in step
    assert aligned_audio(trimmed, track, line(offset=6.0)) < 0.5


def test_a_sped_up_copy_pairs_its_windows_along_the_tilted_line():
    track = soundtrack(2, 40)
    fast = track[::2]  # twice as fast: window i of the copy is window 2i of the original
    assert aligned_audio(fast, track, line(speed=2.0, offset=0.0)) > 0.99
    assert aligned_audio(fast, track, line(speed=1.0, offset=0.0)) < 0.5


def test_silence_and_missing_tracks_measure_nothing():
    silence = np.tile(soundtrack(3, 1), (20, 1))
    assert aligned_audio(silence, silence, line()) == 0.0
    assert aligned_audio(np.zeros((0, 128), np.float32), soundtrack(4, 20), line()) == 0.0
    assert aligned_audio(soundtrack(5, 20), soundtrack(5, 20), Alignment.empty()) == 0.0


def test_every_view_pair_with_evidence_is_aligned_and_mirrors_find_a_flipped_copy():
    scene = Scene(6, motion=0.6)
    orig = features(sample(scene, T), T, soundtrack(7, 20))
    flipped = features(mirror(sample(scene, T, noise=0.1, seed=9)), T)
    c = candidate("orig", orig)
    qdesc, qviews = flipped.query_views()
    pairs = align_views(
        qdesc,
        qviews,
        T,
        flipped.audio,
        c.descriptors,
        c.views,
        c.row_times,
        c.audio,
        c.duration_s,
        3,
        1.25,
        0.99,
    )
    best = max(pairs, key=lambda p: p.confidence)
    assert best.views == (1, 0) and best.confidence > 0.8
    assert best.dynamics.agreement > 0.8


def test_without_audio_clears_the_soundtrack_features_only():
    x = np.random.default_rng(0).uniform(0.1, 1, (2, len(FEATURE_NAMES))).astype(np.float32)
    y = without_audio(x)
    assert (y[:, list(AUDIO_COLUMNS)] == 0).all()
    keep = [i for i in range(len(FEATURE_NAMES)) if i not in AUDIO_COLUMNS]
    np.testing.assert_array_equal(y[:, keep], x[:, keep])
    assert COLUMN["audio_aligned"] in AUDIO_COLUMNS and (x != 0).all()


def test_gain_is_near_zero_for_frames_that_look_like_every_moment():
    rng = np.random.default_rng(1)
    flat = np.full((20, 20), 0.9, np.float32) + rng.normal(0, 0.005, (20, 20)).astype(np.float32)
    a = align(flat, T, T)
    assert a.score > 0.85 and abs(a.gain) < 0.02
    sharp = np.eye(20, dtype=np.float32) * 0.6 + 0.3
    assert align(sharp, T, T).gain > 0.4
