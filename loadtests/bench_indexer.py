"""Indexer shard figures: restart time of a large shard, and the search latency that the shard
tier adds to a check.

    .venv/bin/python loadtests/bench_indexer.py [--videos 100000] [--rows 13] [--root DIR]
                                                [--queries 200] [--factory Flat]

Builds (once, cached under ``--root``) synthetic catalogs with LocalCatalog directly: one
directory holding all ``--videos`` videos of ``--rows`` descriptor rows each, and the same videos
split over 2 shard directories by ``placement(video_id, 2)``. The last 15 % of the big catalog
is added after its last snapshot, which is the state a kill -9 leaves behind. Descriptors are
random unit vectors stored as float16 (for an exact index their distribution does not matter).

Restart (``vdup indexer`` process start → ``/readyz`` answers 200), on the big directory:
  1. after kill -9: snapshot + replay of the rows added after it;
  2. clean: after a SIGTERM (final snapshot), 3 runs;
  3. damaged snapshot: the whole index rebuilt from SQLite.

Search (13-row and 52-row queries, noisy copies of stored videos, k=32, 20 candidates with their
evidence): in process on the big catalog vs one scatter-gather over the 2 shard processes
(HTTP on loopback, wire encoding, merge). Everything shares this machine's cores.

FAISS runs one OpenMP thread per search everywhere (the shards' default, see
``ShardSettings.omp_threads``). ``--factory "IVF1024,SQ8"`` benchmarks a compressed index: each
catalog is trained (``LocalCatalog.train``) on ``--train-rows`` of its stored rows.

Prints JSON lines and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from vdup.catalog.local import LocalCatalog
from vdup.catalog.types import StoredRows, VideoRecord
from vdup.devstack.stack import ServiceProcess, shard_process
from vdup.indexer.client import ShardedCatalog, placement


def vectors(i: int, rows: int) -> np.ndarray:
    """Video i's descriptors: float16 [rows, 512], unit rows, deterministic."""
    v = np.random.default_rng(i).standard_normal((rows, 512)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float16)


def item(i: int, rows: int) -> tuple[VideoRecord, StoredRows]:
    vid = f"video-{i:07d}"
    rec = VideoRecord(vid, vid, f"{i:064x}", False, "", "", 0.0, "", float(rows), rows, 1.7e9 + i)
    return rec, StoredRows(
        vectors(i, rows),
        np.zeros(rows, np.int8),
        np.arange(rows, dtype=np.float32),
        np.zeros((0, 128), np.float16),
    )


def build(root: Path, n: int, rows: int, factory: str, train_rows: int) -> tuple[Path, list[Path]]:
    tag = f"{n}-{factory.replace(',', '_')}"
    big, parts = root / f"all-{tag}", [root / f"shard-{i}-of-2-{tag}" for i in range(2)]
    if (root / f"built-{tag}").exists():
        return big, parts
    for d in [big, *parts]:
        shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    cats = [LocalCatalog(d, index_factory=factory, snapshot_every=0) for d in [big, *parts]]
    tail, batch = int(n * 0.85) // 1000 * 1000, 1000

    def add(lo: int, hi: int) -> None:
        for start in range(lo, hi, batch):
            items = [item(i, rows) for i in range(start, min(hi, start + batch))]
            cats[0].add_many(items)
            for s in (0, 1):
                cats[1 + s].add_many([x for x in items if placement(x[0].video_id, 2) == s])
            if start % 20_000 == 0:
                print(
                    f"built {start + len(items)} / {n} videos, {time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )

    add(0, tail)
    for c in cats:
        if c.effective_factory != factory:  # a trained type: train on what is stored so far
            print(f"training {c.dir.name}: {c.train(train_rows)}", file=sys.stderr, flush=True)
        else:
            c.snapshot()
    add(tail, n)  # the big catalog keeps these unsnapshotted, as kill -9 would leave them
    for c in cats[1:]:
        c.close()
    cats[0]._store.close()
    (root / f"built-{tag}").write_text(json.dumps({"seconds": time.perf_counter() - t0}))
    return big, parts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_timed(data: Path, log: Path, factory: str) -> tuple[ServiceProcess, float]:
    p = shard_process(0, free_port(), data, index_factory=factory, log_path=log, grace_s=900)
    t0 = time.perf_counter()
    p.start()
    p.wait_ready(1800)
    return p, time.perf_counter() - t0


def restarts(big: Path, logs: Path, factory: str) -> dict:
    out = {}
    p, out["after_kill9_s"] = start_timed(big, logs / "restart-kill9.log", factory)
    t0 = time.perf_counter()
    p.stop()
    out["sigterm_stop_with_final_snapshot_s"] = time.perf_counter() - t0
    clean = []
    for run in range(3):
        p, s = start_timed(big, logs / f"restart-clean-{run}.log", factory)
        clean.append(s)
        p.stop()
    out["clean_s"] = clean
    snap = big / "index.faiss"
    with open(snap, "r+b") as f:
        f.seek(4096)
        f.write(b"\xff" * 64)  # damaged in the middle: checksum mismatch
    p, out["damaged_snapshot_rebuild_s"] = start_timed(big, logs / "restart-rebuild.log", factory)
    p.stop()
    out["snapshot_bytes"] = snap.stat().st_size
    out["sqlite_bytes"] = (big / "catalog.sqlite").stat().st_size
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def searches(
    big: Path,
    parts: list[Path],
    logs: Path,
    n: int,
    rows: int,
    queries: int,
    factory: str,
    nprobe: int,
) -> list[dict]:
    env = {"VDUP_INDEXER_NPROBE": str(nprobe)}
    procs = [
        shard_process(
            i,
            free_port(),
            d,
            index_factory=factory,
            env=env,
            log_path=logs / f"search-shard-{i}.log",
        )
        for i, d in enumerate(parts)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.wait_ready(1800)
    sharded = ShardedCatalog([p.ready_url.removesuffix("/readyz") for p in procs], timeout_s=120)
    local = LocalCatalog(big, index_factory=factory, snapshot_every=0, nprobe=nprobe, threads=1)
    rng = np.random.default_rng(7)
    results = []
    try:
        for q_rows in (rows, 4 * rows):
            picks = rng.integers(0, n, queries + 10)
            qs = []
            for i in picks:
                base = vectors(int(i), rows).astype(np.float32)
                q = np.concatenate([base] * (q_rows // rows))
                q = q + 0.3 * rng.standard_normal(q.shape).astype(np.float32) / np.sqrt(512)
                qs.append(q / np.linalg.norm(q, axis=1, keepdims=True))
            paths = (
                ("local in-process", lambda q: local.search_vectors(q, True, 32, 20)),
                ("2 shards, scatter-gather", lambda q: sharded.search_vectors(q, 32, 20)),
            )
            for name, fn in paths:
                times, hits = [], 0
                for j, (i, q) in enumerate(zip(picks, qs)):
                    t0 = time.perf_counter()
                    cands = fn(q)
                    dt = time.perf_counter() - t0
                    if j >= 10:
                        times.append(dt)
                        hits += cands[0].video_id == f"video-{int(i):07d}"
                results.append(
                    {
                        "query_rows": q_rows,
                        "path": name,
                        "p50_ms": pct(times, 50),
                        "p95_ms": pct(times, 95),
                        "mean_ms": statistics.mean(times) * 1000,
                        "top1": hits / len(times),
                    }
                )
                print(json.dumps(results[-1]), flush=True)
        for name, fn in (
            ("get by id", lambda i: sharded.get(f"video-{i:07d}")),
            ("find_sha256", lambda i: sharded.find_sha256(f"{i:064x}")),
        ):
            times = []
            for i in rng.integers(0, n, 60).tolist():
                t0 = time.perf_counter()
                assert fn(i) is not None
                times.append(time.perf_counter() - t0)
            results.append(
                {"path": "2 shards", "op": name, "p50_ms": pct(times, 50), "p95_ms": pct(times, 95)}
            )
            print(json.dumps(results[-1]), flush=True)
    finally:
        sharded.close()
        local._store.close()
        for p in procs:
            p.stop()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=13)
    ap.add_argument("--root", type=Path, default=Path("/tmp/vdup-bench-indexer"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--factory", default="Flat")
    ap.add_argument(
        "--train-rows",
        type=int,
        default=50_000,
        help="rows sampled to train a compressed --factory",
    )
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--skip-restart", action="store_true")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--skip-search", action="store_true")
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    logs = args.root / "logs"
    logs.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    faiss.omp_set_num_threads(1)  # as the shards run (ShardSettings.omp_threads)
    big, parts = build(args.root, args.videos, args.rows, args.factory, args.train_rows)
    print(
        json.dumps(
            {
                "build_s": round(time.perf_counter() - t0, 1),
                "cpus": os.cpu_count(),
                "factory": args.factory,
                "videos": args.videos,
                "rows": args.rows,
            }
        ),
        flush=True,
    )
    if args.build_only:
        return 0
    if not args.skip_restart:
        r = restarts(big, logs, args.factory)
        print(json.dumps(r), flush=True)
    if args.skip_search:
        return 0
    s = searches(big, parts, logs, args.videos, args.rows, args.queries, args.factory, args.nprobe)
    print("\n| query rows | search | p50 ms | p95 ms | top-1 |\n|---|---|---|---|---|")
    for x in s:
        if "op" in x:
            print(f"| {x['op']} | {x['path']} | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} | |")
        else:
            print(
                f"| {x['query_rows']} | {x['path']} | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} | "
                f"{x['top1']:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
