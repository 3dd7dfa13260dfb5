"""Time every registered edit on one 10 s clip at 640 px, to choose the fast implementations.

    ../trainset/venv/bin/python tools/trainset/bench_edits.py VIDEO [--seconds 10]

Prints a markdown table (edit, family, backend, seconds) for README.md, plus the cost of the
final encode. Partner edits get a second segment of the same file as their partner.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.trainset import augly_edits
from tools.trainset.edits import EDITS
from tools.trainset.media import encode, load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video", type=Path)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    clip = load(args.video, 0, args.seconds)
    partner = load(args.video, args.seconds, args.seconds)
    h, w = clip.size
    print(
        f"clip: {len(clip.frames)} frames {w}x{h} @ {clip.fps:.1f} fps, "
        f"audio {clip.audio is not None}"
    )
    t = time.perf_counter()
    encode(clip)
    print(f"final encode (veryfast): {time.perf_counter() - t:.2f} s\n")
    print("| edit | family | backend | s |\n|---|---|---|---|")
    for name, e in EDITS.items():
        if args.only and name not in args.only:
            continue
        if e.backend == "augly" and not augly_edits.available():
            continue
        t = time.perf_counter()
        e.fn(clip, np.random.default_rng(0), partner)
        print(f"| {name} | {e.family} | {e.backend} | {time.perf_counter() - t:.2f} |", flush=True)


if __name__ == "__main__":
    main()
