"""Per-video latency of the in-process pipeline against the decode floor, in one run.

    .venv/bin/python loadtests/bench_speed.py [FILE ...] [--runs 9]

For each file: the median wall time of `ffmpeg -v error -skip_frame nokey -i FILE -f null -`
(the keyframe-only decode floor; PyAV's own keyframe-only decode when no ffmpeg binary is on
PATH), and the median of a full check in process (decode, pre-processing, both descriptors,
search, decision) against a catalog that already holds other videos. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import av

SPEED = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "speed"


def floor_s(path: Path) -> tuple[float, str]:
    ffmpeg = shutil.which("ffmpeg")
    t0 = time.perf_counter()
    if ffmpeg:
        subprocess.run(
            [ffmpeg, "-v", "error", "-skip_frame", "nokey", "-i", str(path), "-f", "null", "-"],
            check=True,
        )
        return time.perf_counter() - t0, "ffmpeg -skip_frame nokey"
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = "NONKEY"
        for _ in c.decode(s):
            pass
    return time.perf_counter() - t0, "PyAV keyframes only"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    files = args.files or sorted(SPEED.glob("*.mp4"))
    from vdup.runtime import build_checker
    from vdup.settings import Settings

    print("| file | floor | floor p50 ms | pipeline p50 ms | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        checker = build_checker(Settings(data_dir=Path(tmp)))
        for i, f in enumerate(files):  # a catalog that is not empty
            checker.check(f.read_bytes(), f"seed-{i}")
        for f in files:
            data = f.read_bytes()
            floors, runs = [], []
            for r in range(args.runs + 1):
                fl, how = floor_s(f)
                t0 = time.perf_counter()
                checker.check(data + b"\0" * (r + 1), None)  # new bytes: no exact-match shortcut
                if r:  # the first run warms caches
                    floors.append(fl)
                    runs.append(time.perf_counter() - t0)
            fp, pp = statistics.median(floors) * 1000, statistics.median(runs) * 1000
            print(f"| {f.name} | {how} | {fp:.0f} | {pp:.0f} | {pp / fp:.2f} |")
        checker.catalog.close()


if __name__ == "__main__":
    main()
