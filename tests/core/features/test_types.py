import numpy as np

from vdup.features.types import distinct_rows


def unit(rng, n=1):
    v = rng.standard_normal((n, 512)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(v, rng, sim):
    """A unit row at cosine ``sim`` from unit row ``v``."""
    n = rng.standard_normal(512).astype(np.float32)
    n -= (n @ v) * v
    n /= np.linalg.norm(n)
    return sim * v + np.sqrt(1 - sim**2) * n


def test_a_static_shot_keeps_one_row_and_each_new_scene_keeps_its_first():
    rng = np.random.default_rng(0)
    a, b = unit(rng, 2)
    rows = np.stack([a, near(a, rng, 0.95), near(a, rng, 0.9), b, near(b, rng, 0.97)])
    assert distinct_rows(rows, 0.8).tolist() == [0, 3]


def test_a_scene_that_comes_back_is_not_indexed_twice():
    rng = np.random.default_rng(1)
    a, b = unit(rng, 2)
    rows = np.stack([a, b, near(a, rng, 0.9)])
    assert distinct_rows(rows, 0.8).tolist() == [0, 1]


def test_rows_below_the_threshold_are_all_kept_and_one_keeps_everything():
    rng = np.random.default_rng(2)
    a = unit(rng)[0]
    rows = np.stack([a, near(a, rng, 0.7), near(a, rng, 0.99)])
    assert distinct_rows(rows, 0.8).tolist() == [0, 1]
    assert distinct_rows(rows, 1.0).tolist() == [0, 1, 2]
    assert distinct_rows(rows[:1], 0.5).tolist() == [0]
