"""What the decision costs per check: ``decide`` timed on a replay of a manifest's features.

    .venv/bin/python loadtests/bench_decision.py ../shared/bench/dev/manifest.csv \
        --cache ../trainset/cache/dev

Features come from ``--cache`` (``vdup calibrate --cache`` writes them; missing ones are
extracted). Every row is searched against the rows before it in an embedded catalog, then
``decide`` runs ``--repeat`` times on the same candidates; prints the median and p95 per check
(ms), and the same without the background set (score normalisation) for comparison.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vdup.calibrate import _cached, _store, read_rows
from vdup.catalog.local import LocalCatalog
from vdup.catalog.types import VideoRecord
from vdup.evaluate import resolve_link
from vdup.features.extractor import limit_blas_threads
from vdup.matching.decide import decide
from vdup.runtime import build_extractor
from vdup.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    settings = Settings()
    limit_blas_threads(settings.blas_threads)
    cfg = settings.decision()
    plain = replace(cfg, background=np.zeros((0, 512), np.float32))
    extractor = None
    times = {"with background": [], "without": []}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = LocalCatalog(Path(tmp))
        for info, link in read_rows(args.manifest):
            f = _cached(args.cache, info.uuid)
            if f is None:
                extractor = extractor or build_extractor(settings)
                f = extractor.extract(Path(resolve_link(link, args.manifest)).read_bytes())
                _store(args.cache, info.uuid, f)
            cands = catalog.search(f, settings.search_k, cfg.max_candidates)
            for name, c in (("with background", cfg), ("without", plain)):
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    decide(f, cands, c)
                    times[name].append((time.perf_counter() - t0) * 1000)
            catalog.add(
                VideoRecord(
                    info.uuid,
                    info.root,
                    f.sha256,
                    info.is_duplicate,
                    info.root if info.is_duplicate else "",
                    "",
                    0.0,
                    "",
                    f.duration_s,
                    len(f.timestamps),
                    0.0,
                ),
                f,
            )
        catalog.close()
    print(
        json.dumps(
            {
                name: {
                    "p50_ms": round(float(np.median(v)), 2),
                    "p95_ms": round(float(np.percentile(v, 95)), 2),
                    "checks": len(v),
                }
                for name, v in times.items()
            }
        )
    )


if __name__ == "__main__":
    main()
