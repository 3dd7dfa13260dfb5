"""The large-index code path of ``loadtests/bench_index.py`` at CI scale (20k videos, random
model)."""

import numpy as np
import pytest

from loadtests import bench_index as bench
from vdup.catalog.local import LocalCatalog

pytestmark = pytest.mark.slow  # builds 20k-video synthetic catalogs


def test_rank_videos_orders_by_best_row_then_id_and_ignores_missing_hits():
    owner = np.array([0, 0, 1, 2, 2])
    sims = np.array([[0.9, 0.5, 0.2], [0.95, 0.9, -1.0]], np.float32)
    ids = np.array([[0, 3, 2], [4, 2, -1]])
    assert bench.rank_videos(sims, ids, owner, 5) == [2, 0, 1]  # v0 and v1 tie at 0.9
    assert bench.rank_videos(sims, ids, owner, 2) == [2, 0]


def test_recall_counts_only_queries_the_reference_finds():
    assert bench.recall([[1], [9], [3]], [1, 2, 3], [[1], [2], [0]]) == 0.5


def test_copies_sit_at_copy_similarity_and_chunks_are_reproducible():
    model = bench.DescriptorModel.random(0)
    catalog = bench.Catalog(model, videos=30_000, seed=3)
    (rows,) = catalog.rows_of([25_001])
    first, batch = list(catalog.batches())[1]
    start = int(catalog.offsets[25_001]) - first
    assert np.array_equal(batch[start : start + len(rows)], rows)
    q = bench.copy_query(rows, np.random.default_rng(0))
    sims = np.sum(q[: len(rows)] * rows, axis=1)
    assert np.all((sims > 0.54) & (sims < 0.96))
    assert np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-4)


def test_a_compressed_index_of_20k_videos_is_small_and_finds_the_originals():
    results = bench.run_bench(
        videos=20_000,
        exact_videos=2_000,
        factories=["IVF256_HNSW32,PQ64"],
        queries=50,
        manifest=None,
        cache=None,
        nprobe=(16,),
        train_rows=20_000,
        log=lambda _: None,
    )
    exact, ivfpq = results
    assert exact["factory"] == "Flat" and exact["subset"] and exact["recall_synthetic"] == 1.0
    assert ivfpq["vectors"] > 20_000 and ivfpq["videos"] == 20_000
    assert ivfpq["bytes_per_video"] < exact["bytes_per_video"] / 10
    assert ivfpq["recall_synthetic"] >= 0.95


def test_distractors_load_into_a_real_catalog_that_serves_the_trained_index(tmp_path):
    figures = bench.load_distractors(
        tmp_path, 3_000, "IVF64,PQ64", None, None, train_rows=20_000, log=lambda _: None
    )
    assert figures["videos"] == 3_000 and figures["index"] == "IVF64,PQ64"
    cat = LocalCatalog(tmp_path, index_factory="IVF64,PQ64", nprobe=16)
    assert cat.effective_factory == "IVF64,PQ64"  # the snapshot, not a rebuild
    model = bench.DescriptorModel.random(0)
    (rows,) = bench.Catalog(model, videos=3_000).rows_of([1234])
    q = bench.copy_query(rows, np.random.default_rng(1))
    found = cat.search_vectors(q, with_audio=False, k=32, max_candidates=20)
    assert "synthetic-1234" in [c.video_id for c in found]
    cat.close()
    timed = bench.time_shard(
        tmp_path, 3_000, "IVF64,PQ64", queries=20, nprobe=16, manifest=None, cache=None
    )
    assert timed["videos"] == 3_000 and timed["index"] == "IVF64,PQ64"
    assert timed["recall_absolute"] >= 0.9 and timed["search_ms_p99"] > 0
