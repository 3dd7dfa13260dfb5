"""In-process throughput on one clip: the ceiling that the load test's videos/min is compared to.

    .venv/bin/python loadtests/inprocess_throughput.py [--clip FILE]
        [--videos 30 | --duration-s 300] [--threads 1] [--out baseline.json]

Checks variants of one clip (the clip's bytes plus a unique ``free`` box, exactly what the load
test's file server serves as a "new" video; see ``fileserver.unique_variant``) with the same
``DuplicateChecker`` that ``vdup eval`` and the API use, on a fresh catalog, with no HTTP and no
download. ``--threads 1`` is ``vdup eval``'s way (one video after another); more threads run
checks side by side the way the API's worker threads do. The first variant is an original and
every later one a visual duplicate of it, as in the load test, so the catalog grows the same
way. Settings come from ``VDUP_*`` as for the API (``VDUP_DATA_DIR`` is replaced by a temporary
folder). Prints one JSON line: videos, wall_s, videos_per_min, p50/p95 ms per check, and the
process's CPU time (all threads) per video, which other jobs on a shared machine do not inflate.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fileserver import unique_variant

CLIP = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "bench"
    / "speed"
    / "vertical_720x1280_60s.mp4"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=CLIP)
    ap.add_argument(
        "--videos", type=int, default=30, help="checks to run (with --duration-s: the most)"
    )
    ap.add_argument(
        "--duration-s", type=float, default=None, help="stop starting new checks after this long, s"
    )
    ap.add_argument("--threads", type=int, default=1, help="checks run side by side")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    if not args.clip.is_file():
        print(f"no clip at {args.clip} (see README: the shared benchmark)", file=sys.stderr)
        return 2
    limit = args.videos if args.duration_s is None else max(args.videos, 100_000)

    from vdup.runtime import build_checker
    from vdup.settings import Settings

    data = args.clip.read_bytes()
    times: list[float] = []
    lock = threading.Lock()
    counter = iter(range(limit))
    with tempfile.TemporaryDirectory(prefix="vdup-inproc-") as tmp:
        checker = build_checker(Settings(data_dir=Path(tmp)))
        t_start, cpu_start = time.perf_counter(), time.process_time()
        stop_at = t_start + args.duration_s if args.duration_s is not None else float("inf")

        def worker() -> None:
            while time.perf_counter() < stop_at:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                checker.check(unique_variant(data, f"inproc-{i}"), f"inproc-{i}")
                with lock:
                    times.append(time.perf_counter() - t0)

        try:
            with ThreadPoolExecutor(args.threads) as pool:
                for f in [pool.submit(worker) for _ in range(args.threads)]:
                    f.result()
        finally:
            checker.catalog.close()
        wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    times.sort()
    result = {
        "clip": args.clip.name,
        "videos": len(times),
        "threads": args.threads,
        "wall_s": round(wall, 1),
        "videos_per_min": round(60 * len(times) / wall, 2),
        "p50_ms": round(1000 * statistics.median(times)),
        "p95_ms": round(1000 * times[max(0, math.ceil(0.95 * len(times)) - 1)]),
        "cpu_s": round(cpu, 1),
        "cpu_s_per_video": round(cpu / max(1, len(times)), 3),
        "extractor": "triton" if Settings().triton_url else "embedded",
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
