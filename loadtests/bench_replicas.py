"""The replicated tier against the shard tier, measured in one run on this machine.

    .venv/bin/python loadtests/bench_replicas.py --manifest ../shared/bench/dev/manifest.csv \\
        --cache ../trainset/cache/dev --preload 20000

What it starts (all on loopback, real processes): a PostgreSQL server (fsync on, as in
production), 2 shards that own their data (the shard tier), and 2 shards x 2 replicas over the
PostgreSQL truth (the replicated tier). Both tiers are preloaded with the same ``--preload``
synthetic videos (``bench_index.DescriptorModel``), then the manifest is checked against both,
video by video, alternating which tier goes first, with features from ``--cache`` (``vdup
calibrate --cache``; extraction is the same for both tiers and is left out). Printed, as JSON
lines: per tier the p50/p95 of a check's catalog part (search + decide + store, ms) and the
ratio; the decisions' agreement; one replica's restart to ready (its snapshot plus the tail)
and its cold start from an empty volume; PostgreSQL bytes per video.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_index import CHUNK, DescriptorModel

from vdup.calibrate import CachedExtractor
from vdup.catalog.types import StoredRows, VideoRecord
from vdup.checker import DuplicateChecker
from vdup.devstack.postgres import PostgresServer
from vdup.devstack.stack import ServiceProcess, shard_process
from vdup.evaluate import read_manifest, resolve_link
from vdup.features.extractor import EmbeddedExtractor
from vdup.indexer.client import ShardedCatalog, placement
from vdup.indexer.replicated import ReplicatedCatalog, StaticReplicas
from vdup.indexer.truth import Truth
from vdup.matching.decide import DecisionConfig

SHARDS, REPLICAS = 2, 2


def synthetic(n: int, seed: int = 0):
    """(record, rows) of ``n`` synthetic distractor videos."""
    model = DescriptorModel.random(seed)
    no_audio = np.zeros((0, 128), np.float16)
    for i in range(-(-n // CHUNK)):
        size = min(CHUNK, n - i * CHUNK)
        counts, rows = model.chunk(i, size, seed)
        starts = np.concatenate([[0], np.cumsum(counts)])
        for j in range(size):
            vid = f"synthetic-{i * CHUNK + j}"
            r = rows[starts[j] : starts[j + 1]].astype(np.float16)
            k = len(r)
            rec = VideoRecord(vid, vid, f"syn-{vid}", False, "", "", 0.0, "", float(k), k, 0.0)
            yield rec, StoredRows(r, np.zeros(k, np.int8), np.arange(k, dtype=np.float32), no_audio)


def pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 1) if xs else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--preload", type=int, default=20_000)
    ap.add_argument("--root", type=Path, default=None, help="work directory (default: a temp one)")
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="vdup-bench-replicas-", dir="/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    pg = PostgresServer(root / "postgres", fsync=True).start()
    owners: list[ServiceProcess] = []
    replicas = None
    try:
        url = pg.create_database("vdup")
        truth = Truth(url, pool_size=2)
        truth.upgrade()
        owners = [shard_process(i, _free(), root / "shards" / f"shard-{i}") for i in range(SHARDS)]
        env = {"VDUP_DATABASE_URL": url, "VDUP_INDEXER_SHARDS": str(SHARDS)}
        replicas = [
            [
                shard_process(
                    i, _free(), root / "replicas" / f"shard-{i}-r{r}", env=env, name=f"r{i}{r}"
                )
                for r in range(REPLICAS)
            ]
            for i in range(SHARDS)
        ]
        for p in [*owners, *_flat(replicas)]:
            p.start()
        for p in [*owners, *_flat(replicas)]:
            p.wait_ready(120)
        sharded = ShardedCatalog([_url(p) for p in owners])
        entries = ["|".join(_url(p) for p in group) for group in replicas]
        replicated = ReplicatedCatalog(Truth(url), StaticReplicas(entries))

        t0 = time.perf_counter()
        for rec, rows in synthetic(args.preload):
            sharded.add_to(placement(rec.video_id, SHARDS), rec, rows)
            truth.add(rec, rows)
        print(json.dumps({"preloaded": args.preload, "s": round(time.perf_counter() - t0, 1)}))
        head = truth.head()
        for p in _flat(replicas):
            _wait_applied(_url(p), head)

        cached = CachedExtractor(EmbeddedExtractor(), args.cache, args.manifest)
        checkers = {
            "shards": DuplicateChecker(cached, sharded, DecisionConfig()),
            "replicas": DuplicateChecker(cached, replicated, DecisionConfig()),
        }
        times: dict[str, list[float]] = {k: [] for k in checkers}
        answers: dict[str, list[dict]] = {k: [] for k in checkers}
        rows = read_manifest(args.manifest)
        for n, row in enumerate(rows):
            data = Path(resolve_link(row.link, args.manifest)).read_bytes()
            order = list(checkers) if n % 2 == 0 else list(checkers)[::-1]
            for tier in order:
                r = checkers[tier].check(data, row.uuid)
                t = r.timings_s
                times[tier].append(
                    1000 * (t.get("search", 0) + t.get("decide", 0) + t.get("store", 0))
                )
                answers[tier].append(r.to_response())
        for tier, xs in times.items():
            print(
                json.dumps(
                    {
                        "tier": tier,
                        "checks": len(xs),
                        "catalog_ms_p50": pct(xs, 50),
                        "catalog_ms_p95": pct(xs, 95),
                    }
                )
            )
        print(
            json.dumps(
                {
                    "ratio_p50": round(
                        pct(times["replicas"], 50) / max(pct(times["shards"], 50), 1e-9), 2
                    ),
                    "same_decisions": answers["replicas"] == answers["shards"],
                }
            )
        )

        one = replicas[0][1]
        one.stop()
        t0 = time.perf_counter()
        one.start().wait_ready(600)
        print(
            json.dumps(
                {
                    "replica_restart_s": round(time.perf_counter() - t0, 2),
                    "videos": args.preload + len(rows),
                }
            )
        )
        one.stop()
        shutil.rmtree(root / "replicas" / "shard-0-r1")
        t0 = time.perf_counter()
        one.start().wait_ready(1800)
        print(json.dumps({"replica_cold_start_s": round(time.perf_counter() - t0, 2)}))
        print(json.dumps({"postgres_bytes_per_video": truth.bytes_per_video()}))
        replicated.close()
        sharded.close()
        truth.close()
    finally:
        if replicas is not None:
            for p in _flat(replicas):
                p.stop()
        for p in owners:
            p.stop()
        pg.stop()
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def _flat(groups: list[list[ServiceProcess]]) -> list[ServiceProcess]:
    return [p for g in groups for p in g]


def _url(p: ServiceProcess) -> str:
    return p.ready_url.removesuffix("/readyz")


def _free() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_applied(url: str, seq: int, timeout_s: float = 600) -> None:
    import httpx

    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        try:
            if int(httpx.get(url + "/readyz", timeout=5).json().get("applied", -1)) >= seq:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not apply change {seq}")


if __name__ == "__main__":
    raise SystemExit(main())
