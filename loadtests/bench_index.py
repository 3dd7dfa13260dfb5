"""``loadtests/bench_index.py``: which FAISS index holds a million videos in little memory and still
finds the original of a copy.

Why synthetic: a million real clips are not here. The catalog is drawn from a Gaussian model of
real SSCD rows (``DescriptorModel``): its mean and covariance are fitted on the dev benchmark's
non-duplicate videos (shrunk towards isotropic, since ~800 rows cannot fill 512 dimensions),
every synthetic video gets the number of indexed rows that a real dev video keeps under
``distinct_rows`` at ``INDEX_MAX_SIM``, and its rows share a per-video centre, so they are as
alike within a video and as unlike across videos as real ones (the fit prints both statistics
next to the real figures). Without the benchmark (CI, a fresh clone) a seeded random model
stands in, which exercises the same code.

Queries are copies of catalog videos: each indexed row of the original, perturbed to the
best-pair similarity that real copies show (uniform in [``copy_sim_lo``, 0.95]), plus as many
unrelated rows (the mirrored and cropped views of a copy mostly match nothing). With the dev
benchmark, its real duplicates are queried too, their real originals being in the catalog.

Recall of the true original: the share of queries whose original is among the ``candidates``
best videos (ranked as ``LocalCatalog.search_vectors`` ranks them: best row similarity) out of
those for which exact search over the ``--exact-videos`` subset finds it. The subset contains
every queried original, so exact search there is the ground truth; the approximate indexes search
the whole catalog, which only makes their task harder.

Per index: RAM per video (serialized index bytes, which for these types is what they hold in
memory: codes, ids, lists, graph), training and build time, add throughput, search p50/p99 per
query video with one FAISS thread (a shard's default) and recall.

Descriptors are generated in fixed chunks from per-chunk seeds, so each index sees the same
catalog without holding 1M videos' float rows in memory at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from vdup.catalog.faiss_index import new_index, set_search_params
from vdup.features.types import DIM, INDEX_MAX_SIM, QUERY_MAX_SIM, distinct_rows

CHUNK = 20_000  # videos generated per chunk


@dataclass
class DescriptorModel:
    """A Gaussian of SSCD rows: mean [512], factor [512, 512] (covariance = factor @ factor.T),
    empirical indexed rows per video ``counts`` [v] (int), and ``spread``, the weight of a row's
    own draw against its video's centre."""

    mean: np.ndarray
    factor: np.ndarray
    counts: np.ndarray
    spread: float

    @classmethod
    def fit(
        cls, videos: list[np.ndarray], counts: np.ndarray, shrink: float = 0.3, spread: float = 0.9
    ) -> DescriptorModel:
        """videos: float32 [r_i, 512] rows of unrelated real videos; counts: rows each video
        indexes; shrink: weight of the isotropic part of the covariance (same total variance)."""
        rows = np.concatenate(videos).astype(np.float64)
        mean = rows.mean(0)
        cov = np.cov((rows - mean).T)
        cov = (1 - shrink) * cov + shrink * np.trace(cov) / DIM * np.eye(DIM)
        vals, vecs = np.linalg.eigh(cov)
        factor = vecs * np.sqrt(np.clip(vals, 0, None))
        return cls(
            mean.astype(np.float32), factor.astype(np.float32), np.asarray(counts, np.int64), spread
        )

    @classmethod
    def random(cls, seed: int = 0, rows_per_video: int = 7) -> DescriptorModel:
        """A stand-in without real descriptors: a random anisotropic Gaussian."""
        rng = np.random.default_rng(seed)
        variances = 1.0 / np.arange(1, DIM + 1)  # a decaying spectrum, like SSCD's
        variances *= 0.96 / variances.sum()  # unit rows: |mean|^2 + trace = 1
        q, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
        mean = rng.standard_normal(DIM)
        mean *= 0.2 / np.linalg.norm(mean)
        counts = np.clip(rng.poisson(rows_per_video, 500), 1, None)
        return cls(
            mean.astype(np.float32), (q * np.sqrt(variances)).astype(np.float32), counts, 0.9
        )

    def chunk(self, index: int, size: int = CHUNK, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Videos ``index*size .. index*size+size-1``: (counts int64 [size], rows float32
        [sum(counts), 512], L2-normalised), the same for the same (index, size, seed)."""
        rng = np.random.default_rng([seed, index])
        counts = rng.choice(self.counts, size)
        centres = self._draw(rng, size)
        own = self._draw(rng, int(counts.sum()))
        deviation = (np.repeat(centres, counts, axis=0) + self.spread * own) / np.sqrt(
            1 + self.spread**2
        )
        return counts, _normalise(self.mean + deviation)

    def counts_of(self, index: int, size: int = CHUNK, seed: int = 0) -> np.ndarray:
        """``chunk``'s counts without drawing its rows (its generator's first draw)."""
        return np.random.default_rng([seed, index]).choice(self.counts, size)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """float32 [n, 512]: zero-mean draws of the covariance."""
        return rng.standard_normal((n, DIM), dtype=np.float32) @ self.factor.T

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """float32 [n, 512]: unrelated rows, L2-normalised."""
        return _normalise(self.mean + self._draw(rng, n))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def copy_query(
    rows: np.ndarray,
    rng: np.random.Generator,
    sim_lo: float = 0.55,
    decoys: np.ndarray | None = None,
) -> np.ndarray:
    """A copy's search rows from its original's rows [r, 512]: each row moved to a cosine
    similarity drawn uniformly from [sim_lo, 0.95], then as many unrelated rows from ``decoys``
    (the views of a copy that match nothing). float32 [2r, 512]."""
    r = len(rows)
    sims = rng.uniform(sim_lo, 0.95, r).astype(np.float32)
    noise = rng.standard_normal(rows.shape).astype(np.float32)
    noise -= (noise * rows).sum(1, keepdims=True) * rows  # orthogonal to each row
    noise = _normalise(noise)
    moved = sims[:, None] * rows + np.sqrt(1 - sims**2)[:, None] * noise
    extra = decoys[:r] if decoys is not None else _normalise(rng.standard_normal(rows.shape))
    return np.concatenate([moved, extra]).astype(np.float32)


def rank_videos(sims: np.ndarray, ids: np.ndarray, owner: np.ndarray, candidates: int) -> list[int]:
    """The ``candidates`` best videos for one query: sims/ids [q, k] from FAISS, owner int64
    [rows] the video of each row id; videos ranked by best row similarity, then id."""
    ok = ids >= 0
    vids, s = owner[ids[ok]], sims[ok]
    order = np.lexsort((vids, -s))
    _, first = np.unique(vids[order], return_index=True)
    best = order[first]
    ranked = best[np.lexsort((vids[best], -s[best]))]
    return vids[ranked][:candidates].tolist()


@dataclass
class Catalog:
    """The synthetic catalog: ``videos`` videos from ``model`` in chunks of CHUNK, then the real
    ones (``extra``: list of float32 [r, 512]) as the last video ids."""

    model: DescriptorModel
    videos: int
    seed: int = 0
    extra: tuple = ()

    def __post_init__(self) -> None:
        sizes = [min(CHUNK, self.videos - i * CHUNK) for i in range(self.chunks)]
        counts = [self.model.counts_of(i, size, self.seed) for i, size in enumerate(sizes)]
        counts.append(np.array([len(e) for e in self.extra], np.int64))
        self._counts = np.concatenate(counts)
        self.offsets = np.concatenate([[0], np.cumsum(self._counts)])
        self.owner = np.repeat(np.arange(len(self._counts)), self._counts)

    @property
    def chunks(self) -> int:
        return -(-self.videos // CHUNK)

    @property
    def total_videos(self) -> int:
        return self.videos + len(self.extra)

    def batches(self, limit_videos: int | None = None):
        """(first row id, rows float32 [b, 512]) in row-id order, over the first
        ``limit_videos`` synthetic videos (all by default) and then the real ones."""
        n = self.videos if limit_videos is None else min(limit_videos, self.videos)
        for i in range(-(-n // CHUNK)):
            size = min(CHUNK, self.videos - i * CHUNK)
            counts, rows = self.model.chunk(i, size, self.seed)
            keep = min(size, n - i * CHUNK)
            first = int(self.offsets[i * CHUNK])
            yield first, rows[: int(counts[:keep].sum())]
        if self.extra:
            yield int(self.offsets[self.videos]), np.concatenate(self.extra).astype(np.float32)

    def rows_of(self, videos: list[int]) -> list[np.ndarray]:
        """float32 [r, 512] rows of each video in ``videos`` (each chunk generated once)."""
        out: dict[int, np.ndarray] = {}
        by_chunk: dict[int, list[int]] = {}
        for v in videos:
            if v >= self.videos:
                out[v] = np.asarray(self.extra[v - self.videos], np.float32)
            else:
                by_chunk.setdefault(v // CHUNK, []).append(v)
        for i, members in by_chunk.items():
            counts, rows = self.model.chunk(i, min(CHUNK, self.videos - i * CHUNK), self.seed)
            starts = np.concatenate([[0], np.cumsum(counts)])
            for v in members:
                j = v - i * CHUNK
                out[v] = rows[starts[j] : starts[j + 1]]
        return [out[v] for v in videos]


def build(
    catalog: Catalog,
    factory: str,
    train_rows: int,
    limit_videos: int | None = None,
    threads: int = 0,
) -> tuple[faiss.Index, dict]:
    """Train ``factory`` on ``train_rows`` rows of the first chunks and add the catalog's rows
    (the first ``limit_videos`` synthetic videos and the real ones). Returns (index, figures)."""
    if threads:
        faiss.omp_set_num_threads(threads)
    index = new_index(factory)
    t0 = time.perf_counter()
    if not index.is_trained:
        sample = []
        for _, rows in catalog.batches(limit_videos):
            sample.append(rows)
            if sum(len(s) for s in sample) >= train_rows:
                break
        index.train(np.concatenate(sample)[:train_rows])
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for first, rows in catalog.batches(limit_videos):
        index.add_with_ids(rows, np.arange(first, first + len(rows), dtype=np.int64))
    add_s = time.perf_counter() - t1
    videos = (catalog.videos if limit_videos is None else min(limit_videos, catalog.videos)) + len(
        catalog.extra
    )
    nbytes = faiss.serialize_index(index).nbytes
    return index, {
        "factory": factory,
        "videos": videos,
        "vectors": int(index.ntotal),
        "bytes_per_video": round(nbytes / videos, 1),
        "train_s": round(train_s, 1),
        "add_s": round(add_s, 1),
        "videos_per_s": round(videos / max(add_s, 1e-9)),
    }


def search_all(
    index: faiss.Index, catalog: Catalog, queries: list[np.ndarray], k: int, candidates: int
) -> tuple[list[list[int]], np.ndarray]:
    """Each query's candidate videos, and its search time in ms (one FAISS thread)."""
    faiss.omp_set_num_threads(1)
    found, ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        sims, ids = index.search(q, k)
        found.append(rank_videos(sims, ids, catalog.owner, candidates))
        ms.append((time.perf_counter() - t0) * 1000)
    return found, np.asarray(ms)


def recall(found: list[list[int]], truth: list[int], reference: list[list[int]]) -> float:
    """Share of queries whose true video is found, among those where ``reference`` finds it."""
    judged = [i for i, t in enumerate(truth) if t in reference[i]]
    if not judged:
        return float("nan")
    return sum(truth[i] in found[i] for i in judged) / len(judged)


def synthetic_queries(
    catalog: Catalog, n: int, within: int, seed: int = 1
) -> tuple[list[np.ndarray], list[int]]:
    """``n`` copy queries of random synthetic videos among the first ``within``."""
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(min(within, catalog.videos), n, replace=False))
    decoy_model = catalog.model
    queries, truth = [], []
    for v, rows in zip(picks.tolist(), catalog.rows_of(picks.tolist())):
        decoys = decoy_model.sample(rng, len(rows))
        queries.append(copy_query(rows, rng, decoys=decoys))
        truth.append(v)
    return queries, truth


# -- the dev benchmark's descriptors --------------------------------------------------------


def dev_features(manifest: Path, cache: Path) -> dict:
    """uuid -> (kind, root uuid, indexed rows [r, 512], search rows [q, 512]) for every dev
    video, extracted once in process and cached in ``cache`` (npz)."""
    from vdup.evaluate import read_manifest, resolve_link

    rows = read_manifest(manifest)
    cache.mkdir(parents=True, exist_ok=True)
    extractor = None
    out = {}
    for r in rows:
        path = cache / f"{r.uuid}.npz"
        if not path.exists():
            if extractor is None:
                from vdup.features.extractor import EmbeddedExtractor

                extractor = EmbeddedExtractor()
            f = extractor.extract(Path(resolve_link(r.link, manifest)).read_bytes())
            stored, _ = f.stored_views()
            np.savez(path, stored=stored, search=f.search_rows(1.0))
        z = np.load(path)
        stored, search = z["stored"], z["search"]
        out[r.uuid] = (
            r.kind,
            r.duplicate_for,
            stored[distinct_rows(stored, INDEX_MAX_SIM)],
            search[distinct_rows(search, QUERY_MAX_SIM)],
        )
    return out


def fit_dev_model(dev: dict) -> tuple[DescriptorModel, dict]:
    """The model fitted on the dev benchmark's unrelated videos, and the statistics that check
    it (real vs synthetic: cosine of rows of different videos, mean and p99)."""
    negatives = [v[2] for v in dev.values() if v[0] in ("original", "distractor", "same_audio")]
    counts = np.array([len(v[2]) for v in dev.values() if v[0] != "exact"])
    model = DescriptorModel.fit(negatives, counts)
    real = _cross_sims(negatives)
    _, synth = model.chunk(0, 200, seed=99)
    c, _ = model.chunk(0, 200, seed=99)
    synth_videos = np.split(synth, np.cumsum(c)[:-1])
    fake = _cross_sims(synth_videos[:60])
    within = [
        float(np.mean((v @ v.T)[np.triu_indices(len(v), 1)])) for v in synth_videos if len(v) > 1
    ]
    real_within = [
        float(np.mean((v @ v.T)[np.triu_indices(len(v), 1)])) for v in negatives if len(v) > 1
    ]
    return model, {
        "real_cross_mean": round(float(real.mean()), 3),
        "real_cross_p99": round(float(np.percentile(real, 99)), 3),
        "synthetic_cross_mean": round(float(fake.mean()), 3),
        "synthetic_cross_p99": round(float(np.percentile(fake, 99)), 3),
        "real_within_mean": round(float(np.mean(real_within)), 3),
        "synthetic_within_mean": round(float(np.mean(within)), 3),
        "rows_per_video_mean": round(float(counts.mean()), 2),
    }


def _cross_sims(videos: list[np.ndarray]) -> np.ndarray:
    out = []
    for i, a in enumerate(videos):
        for b in videos[i + 1 :]:
            out.append((a @ b.T).ravel())
    return np.concatenate(out)


def dev_queries(dev: dict, catalog_extra_ids: dict[str, int]) -> tuple[list[np.ndarray], list[int]]:
    """Search rows of every dev duplicate (not exact copies) whose root is in the catalog."""
    queries, truth = [], []
    for kind, root, _, search in dev.values():
        if kind in ("exact", "original", "distractor", "hard_negative", "same_audio"):
            continue
        if root in catalog_extra_ids:
            queries.append(np.ascontiguousarray(search, np.float32))
            truth.append(catalog_extra_ids[root])
    return queries, truth


# -- a real catalog full of distractors ------------------------------------------------------


def load_distractors(
    data_dir: Path,
    videos: int,
    factory: str,
    manifest: Path | None,
    cache: Path,
    train_rows: int = 262_144,
    seed: int = 0,
    log=print,
) -> dict:
    """Fill a LocalCatalog in ``data_dir`` with ``videos`` synthetic videos (the model above),
    train ``factory`` on its rows and snapshot it, for ``vdup eval --data data_dir`` with
    ``VDUP_INDEX_FACTORY`` = ``factory``: the dev benchmark replayed over a million videos.
    Synthetic videos are ordinary catalog entries (id ``synthetic-<i>``, no audio). The index is
    trained as soon as ``train_rows`` rows are stored, so the rest goes straight into it (an
    untrained catalog serves, and holds, an exact index: 2 KB a row)."""
    from vdup.catalog.local import LocalCatalog
    from vdup.catalog.types import StoredRows, VideoRecord

    if manifest is not None and manifest.exists():
        model, _ = fit_dev_model(dev_features(manifest, cache))
    else:
        model = DescriptorModel.random(seed)
    cat = LocalCatalog(data_dir, index_factory=factory, snapshot_every=0, verify=False)
    t0 = time.perf_counter()
    no_audio = np.zeros((0, 128), np.float16)
    trained: dict = {}
    for i in range(-(-videos // CHUNK)):
        size = min(CHUNK, videos - i * CHUNK)
        counts, rows = model.chunk(i, size, seed)
        starts = np.concatenate([[0], np.cumsum(counts)])
        items = []
        for j in range(size):
            vid = f"synthetic-{i * CHUNK + j}"
            r = rows[starts[j] : starts[j + 1]].astype(np.float16)
            n = len(r)
            items.append(
                (
                    VideoRecord(
                        vid,
                        vid,
                        f"synthetic-{seed}-{i * CHUNK + j}",
                        False,
                        "",
                        "",
                        0.0,
                        "",
                        float(n),
                        n,
                        0.0,
                        "bench-index",
                    ),
                    StoredRows(r, np.zeros(n, np.int8), np.arange(n, dtype=np.float32), no_audio),
                )
            )
        cat.add_many(items)
        log(
            json.dumps(
                {"loaded_videos": i * CHUNK + size, "seconds": round(time.perf_counter() - t0, 1)}
            )
        )
        if not trained and cat.stats()["vectors"] >= train_rows:
            trained = cat.train(train_rows)
    if not trained:
        trained = cat.train(train_rows)
    cat.snapshot()
    stats = cat.stats()
    cat.close()
    return {**trained, **stats, "load_s": round(time.perf_counter() - t0, 1)}


def time_shard(
    data_dir: Path,
    videos: int,
    factory: str,
    queries: int,
    nprobe: int,
    manifest: Path | None,
    cache: Path,
    seed: int = 0,
) -> dict:
    """Open the catalog that ``load_distractors`` filled (start-up time: SQLite, snapshot, replay)
    and time ``LocalCatalog.search_vectors`` (the shard's whole search: FAISS with one thread,
    row ids to videos in SQLite, the candidates' rows read for alignment) on copy queries of its
    synthetic videos. Recall here is absolute: the original among the 20 candidates."""
    from vdup.catalog.local import LocalCatalog

    if manifest is not None and manifest.exists():
        model, _ = fit_dev_model(dev_features(manifest, cache))
    else:
        model = DescriptorModel.random(seed)
    t0 = time.perf_counter()
    cat = LocalCatalog(data_dir, index_factory=factory, nprobe=nprobe, verify=False, threads=1)
    open_s = time.perf_counter() - t0
    qs, truth = synthetic_queries(Catalog(model, videos, seed), queries, within=videos, seed=7)
    ms, faiss_ms, hits = [], [], 0
    for q, t in zip(qs, truth):
        t1 = time.perf_counter()
        found = cat.search_vectors(q, with_audio=False, k=32, max_candidates=20)
        t2 = time.perf_counter()
        cat.index.search(np.ascontiguousarray(q, np.float32), 32)  # FAISS alone, for the split
        ms.append((t2 - t1) * 1000)
        faiss_ms.append((time.perf_counter() - t2) * 1000)
        hits += f"synthetic-{t}" in [c.video_id for c in found]
    stats = cat.stats()
    cat.close()
    pct = lambda xs, p: round(float(np.percentile(xs, p)), 2)  # noqa: E731
    return {
        **stats,
        "nprobe": nprobe,
        "open_s": round(open_s, 2),
        "search_ms_p50": pct(ms, 50),
        "search_ms_p99": pct(ms, 99),
        "faiss_ms_p50": pct(faiss_ms, 50),
        "faiss_ms_p99": pct(faiss_ms, 99),
        "recall_absolute": round(hits / len(truth), 4),
        "queries": len(truth),
    }


# -- the command ------------------------------------------------------------------------------

FACTORIES = (
    "IVF4096_HNSW32,PQ128x4fs",
    "IVF4096_HNSW32,PQ64",
    "OPQ64,IVF4096_HNSW32,PQ64",
    "HNSW32,SQ8",
)


def run_bench(
    videos: int,
    exact_videos: int,
    factories: list[str],
    queries: int,
    manifest: Path | None,
    cache: Path,
    k: int = 32,
    candidates: int = 20,
    nprobe: tuple[int, ...] = (16,),
    ef_search: tuple[int, ...] = (64,),
    train_rows: int = 262_144,
    hnsw_videos: int | None = None,
    seed: int = 0,
    log=print,
) -> list[dict]:
    """The whole comparison; returns one dict per index (see the module docstring)."""
    fit_stats: dict = {}
    if manifest is not None and manifest.exists():
        dev = dev_features(manifest, cache)
        model, fit_stats = fit_dev_model(dev)
        originals = [u for u, v in dev.items() if v[0] == "original"]
        extra = tuple(dev[u][2] for u in originals)
    else:
        dev, model, originals, extra = {}, DescriptorModel.random(seed), [], ()
    log(json.dumps({"model": "dev" if dev else "random", **fit_stats}))
    catalog = Catalog(model, videos, seed, extra)
    extra_ids = {u: videos + i for i, u in enumerate(originals)}
    sq, st = synthetic_queries(catalog, queries, within=exact_videos)
    dq, dt = dev_queries(dev, extra_ids) if dev else ([], [])
    results = []

    exact, fig = build(catalog, "Flat", 0, limit_videos=exact_videos)
    s_ref, s_ms = search_all(exact, catalog, sq, k, candidates)
    d_ref, _ = search_all(exact, catalog, dq, k, candidates)
    del exact
    results.append(_row(fig, s_ms, s_ref, st, s_ref, d_ref, dt, d_ref, subset=True))
    log(json.dumps(results[-1]))
    for factory in factories:
        limit = hnsw_videos if factory.startswith("HNSW") and hnsw_videos else None
        index, fig = build(catalog, factory, train_rows, limit_videos=limit)
        hnsw = "HNSW" in factory and "IVF" not in factory
        for setting in ef_search if hnsw else nprobe:
            set_search_params(index, setting, ef_search=setting)
            s_found, s_ms = search_all(index, catalog, sq, k, candidates)
            d_found, _ = search_all(index, catalog, dq, k, candidates)
            results.append(
                _row(
                    {**fig, ("ef_search" if hnsw else "nprobe"): setting},
                    s_ms,
                    s_found,
                    st,
                    s_ref,
                    d_found,
                    dt,
                    d_ref,
                    subset=limit is not None and limit < videos,
                )
            )
            log(json.dumps(results[-1]))
        del index
    return results


def _row(
    fig: dict, ms: np.ndarray, found, truth, reference, d_found, d_truth, d_reference, subset: bool
) -> dict:
    row = {
        **fig,
        "search_ms_p50": round(float(np.percentile(ms, 50)), 2),
        "search_ms_p99": round(float(np.percentile(ms, 99)), 2),
        "recall_synthetic": round(recall(found, truth, reference), 4),
        "queries_synthetic": len(truth),
    }
    if d_truth:
        row["recall_dev"] = round(recall(d_found, d_truth, d_reference), 4)
        row["queries_dev"] = len(d_truth)
    row["subset"] = subset
    return row


def table(results: list[dict]) -> str:
    head = (
        "| index | videos | RAM/video | train s | add videos/s | search p50 ms | p99 ms | "
        "recall (synthetic) | recall (dev copies) |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in results:
        lines.append(
            f"| `{r['factory']}` {_search_setting(r)} | {r['videos']:,} | {r['bytes_per_video']:.0f} B | "
            f"{r['train_s']} | {r['videos_per_s']:,} | {r['search_ms_p50']} | "
            f"{r['search_ms_p99']} | {r['recall_synthetic']} | {r.get('recall_dev', '-')} |"
        )
    return "\n".join(lines)


def _search_setting(r: dict) -> str:
    if "nprobe" in r:
        return f"nprobe {r['nprobe']}"
    return f"efSearch {r['ef_search']}" if "ef_search" in r else ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", type=int, default=1_000_000, help="synthetic videos")
    parser.add_argument(
        "--exact-videos",
        type=int,
        default=100_000,
        help="subset searched exactly (ground truth; holds every queried video)",
    )
    parser.add_argument(
        "--factory",
        action="append",
        default=None,
        help=f"FAISS factory to compare (repeatable; default {FACTORIES})",
    )
    parser.add_argument("--queries", type=int, default=1000, help="synthetic copy queries")
    parser.add_argument(
        "--manifest",
        type=Path,
        default=Path("../shared/bench/dev/manifest.csv"),
        help="dev benchmark to fit the descriptor model on (optional)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("data/bench-index/dev-features"),
        help="where the dev descriptors are cached",
    )
    parser.add_argument(
        "--nprobe",
        type=int,
        nargs="+",
        default=[16, 32],
        help="IVF lists visited per query row (each value is measured)",
    )
    parser.add_argument(
        "--ef-search",
        type=int,
        nargs="+",
        default=[64],
        help="HNSW efSearch (each value is measured)",
    )
    parser.add_argument("--train-rows", type=int, default=262_144)
    parser.add_argument(
        "--hnsw-videos",
        type=int,
        default=None,
        help="build HNSW types on this many videos only (their build is slow)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shard",
        type=Path,
        default=None,
        metavar="DIR",
        help="instead of the comparison: open the catalog --load-distractors "
        "filled, report its start-up time and search p50/p99 (one thread)",
    )
    parser.add_argument(
        "--load-distractors",
        type=Path,
        default=None,
        metavar="DIR",
        help="instead of the comparison: fill a catalog in DIR with --videos "
        "synthetic videos and train the first --factory on it",
    )


def run(args: argparse.Namespace) -> int:
    if args.shard is not None:
        factory = (args.factory or [FACTORIES[0]])[0]
        for nprobe in args.nprobe:
            print(
                json.dumps(
                    time_shard(
                        args.shard,
                        args.videos,
                        factory,
                        args.queries,
                        nprobe,
                        args.manifest,
                        args.cache,
                        args.seed,
                    )
                ),
                flush=True,
            )
        return 0
    if args.load_distractors is not None:
        factory = (args.factory or [FACTORIES[0]])[0]
        print(
            json.dumps(
                load_distractors(
                    args.load_distractors,
                    args.videos,
                    factory,
                    args.manifest,
                    args.cache,
                    args.train_rows,
                    args.seed,
                    log=lambda line: print(line, flush=True),
                )
            )
        )
        return 0
    results = run_bench(
        args.videos,
        args.exact_videos,
        args.factory or list(FACTORIES),
        args.queries,
        args.manifest,
        args.cache,
        nprobe=args.nprobe,
        ef_search=args.ef_search,
        train_rows=args.train_rows,
        hnsw_videos=args.hnsw_videos,
        seed=args.seed,
        log=lambda line: print(line, flush=True),
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
