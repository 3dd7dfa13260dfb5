"""Embedded extraction: which frames are mirrored, and that streaming changes nothing.

Real decoding and the real SSCD graph on generated clips; ``mirror_plan`` on hand-made vectors.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vdup.features.extractor import MIRROR_MAX_SIM, decode_and_describe, mirror_plan
from vdup.media.decode import decode_video


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_mirror_plan_mirrors_each_new_shot_once_and_lends_its_mirror_to_the_shot():
    rng = np.random.default_rng(0)
    shots = unit(rng.normal(size=(3, 512)))
    near = unit(shots[0] + 0.01 * rng.normal(size=512))  # the first shot again, slightly moved
    plain = np.stack([shots[0], near, shots[1], shots[2], shots[1]])
    rows, source = mirror_plan(plain, 0.95)
    assert rows.tolist() == [0, 2, 3]
    assert source.tolist() == [0, 0, 1, 2, 1]  # indices into plain[rows]


def test_mirror_plan_continues_from_frames_mirrored_in_earlier_batches():
    rng = np.random.default_rng(1)
    a, b = unit(rng.normal(size=(2, 512)))
    rows, source = mirror_plan(np.stack([a, b]), 0.95, known=a[None])
    assert rows.tolist() == [1]
    assert source.tolist() == [0, 1]  # a: the known frame; b: the first new one


def test_mirror_plan_mirrors_every_frame_at_max_sim_one():
    plain = unit(np.ones((4, 512)))
    rows, source = mirror_plan(plain, 1.0)
    assert rows.tolist() == source.tolist() == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def described(extractor, videos):
    data = videos["flip"]
    with ThreadPoolExecutor(1) as one, ThreadPoolExecutor(3) as three:
        a = decode_and_describe(data, extractor.sampling, extractor.limits, extractor.images, one)
        b = decode_and_describe(data, extractor.sampling, extractor.limits, extractor.images, three)
    return data, a, b


def test_streamed_descriptors_do_not_depend_on_the_pool(described):
    _, (inputs_a, emb_a, _), (inputs_b, emb_b, _) = described
    assert np.array_equal(inputs_a.images, inputs_b.images)
    np.testing.assert_allclose(emb_a, emb_b, atol=1e-5)


def test_each_mirror_descriptor_is_its_frames_mirror_or_one_as_alike(described, extractor):
    data, (inputs, emb, _), _ = described
    decoded = decode_video(data, extractor.sampling, extractor.limits)
    n = len(decoded.timestamps)
    assert inputs.images.shape[0] == n  # a whole-frame clip: no content region
    exact_plain = extractor.images(decoded.frames)
    exact_mirrored = extractor.images(np.ascontiguousarray(decoded.frames[:, :, ::-1]))
    np.testing.assert_allclose(emb[:n], exact_plain, atol=1e-5)
    sims = np.sum(emb[n:] * exact_mirrored, axis=1)
    rows, _ = mirror_plan(exact_plain, MIRROR_MAX_SIM)
    assert 0 < len(rows) < n  # a still-ish generated clip: some mirrors are lent
    np.testing.assert_allclose(sims[rows], 1.0, atol=1e-5)
    assert sims.min() >= 0.9


def test_the_embedded_extractor_keeps_thumbnails_of_its_sampled_frames(extractor, videos):
    import io

    import av

    from vdup.media.thumbs import DEFAULT_COUNT

    features = extractor.extract(videos["orig"])  # 320 x 240
    thumbs = features.thumbnails
    n = len(features.timestamps)
    assert extractor.thumbnails == DEFAULT_COUNT and len(thumbs.jpegs) == min(n, DEFAULT_COUNT)
    assert thumbs.times.dtype == np.float32 and np.all(np.diff(thumbs.times) > 0)
    assert np.isin(thumbs.times, features.timestamps).all()
    assert (thumbs.times[0], thumbs.times[-1]) == (features.timestamps[0], features.timestamps[-1])
    for data in thumbs.jpegs:
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
        with av.open(io.BytesIO(data)) as container:
            frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (160, 120)


def test_thumbnails_are_made_in_the_shared_path_only_when_asked(described, extractor):
    data, (inputs, _, _), _ = described
    assert inputs.thumbnails.jpegs == ()  # decode_and_describe's default: none
    with ThreadPoolExecutor(2) as pool:
        three, _, _ = decode_and_describe(
            data, extractor.sampling, extractor.limits, extractor.images, pool, thumbnails=3
        )
    assert len(three.thumbnails.jpegs) == 3
    assert np.isin(three.thumbnails.times, three.timestamps).all()
