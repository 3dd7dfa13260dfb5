"""Per-video latency of the in-process pipeline against the decode floor, in one run.

    .venv/bin/python loadtests/bench_speed.py [FILE ...] [--runs 9]
    .venv/bin/python loadtests/bench_speed.py --matrix [--clips DIR] [--runs 5] [--only SUBSTR]

``--matrix`` generates (once, into ``--clips``, default ../bench-speed-matrix) clips of the
shapes a platform receives: 720x1280 and 1080x1920 portrait, one 2160x3840; GOPs of 1, 2, 5 and
10 s (no scene-cut keyframes); H.264 and HEVC; 15, 30 and 60 s; with and without AAC audio.
Their content is a textured picture panned and crossed by moving shapes, so the encoders make
real P and B frames. For each: the keyframe-only floor, the p50 of a full check, the ratio, and
the CPU seconds per check (the process's user + system time over the check, every thread).

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
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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


@dataclass(frozen=True)
class Shape:
    """One clip of the matrix: size (portrait), GOP s, codec, duration s, audio."""

    width: int
    height: int
    gop_s: float
    codec: str = "h264"
    duration_s: float = 30.0
    audio: bool = True
    fps: int = 30

    @property
    def name(self) -> str:
        sound = "aac" if self.audio else "noaudio"
        return (
            f"{self.codec}_{self.width}x{self.height}_{self.duration_s:g}s_gop{self.gop_s:g}_"
            f"{sound}.mp4"
        )


def matrix_shapes() -> list[Shape]:
    """Every size x GOP x codec at 30 s with audio; durations and no-audio around the 1080p
    5 s-GOP H.264 clip and the 720p 2 s one; one 4K clip."""
    shapes = [
        Shape(w, h, g, c)
        for (w, h) in ((720, 1280), (1080, 1920))
        for g in (1, 2, 5, 10)
        for c in ("h264", "hevc")
    ]
    for w, h, g in ((720, 1280, 2), (1080, 1920, 5)):
        shapes += [Shape(w, h, g, duration_s=d) for d in (15, 60)]
        shapes.append(Shape(w, h, g, audio=False))
    shapes.append(Shape(2160, 3840, 2, duration_s=15))
    return shapes


#: codec -> (encoder, preset, crf, the encoder's own parameter option); keyframes only every GOP.
ENCODERS = {
    "h264": ("libx264", "veryfast", "23", "x264-params"),
    "hevc": ("libx265", "ultrafast", "26", "x265-params"),
}
EXTRA_PARAMS = {"h264": "", "hevc": ":log-level=error"}


def make_clip(shape: Shape, path: Path) -> None:
    """Encode ``shape`` to ``path``: a textured picture twice the frame's size, panned across,
    with moving discs; keyframes every ``gop_s`` and nowhere else."""
    rng = np.random.default_rng(zlib.crc32(shape.name.encode()))
    big_h, big_w = 2 * shape.height, 2 * shape.width
    small = rng.integers(0, 255, (big_h // 16, big_w // 16, 3), dtype=np.uint8)
    texture = np.kron(small, np.ones((16, 16, 1), np.uint8))
    texture = (texture.astype(np.int16) + rng.integers(-12, 12, texture.shape)).clip(0, 255)
    texture = texture.astype(np.uint8)
    gop = int(round(shape.gop_s * shape.fps))
    with av.open(str(path), "w", format="mp4") as out:
        encoder, preset, crf, params = ENCODERS[shape.codec]
        keys = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        v = out.add_stream(
            encoder,
            rate=shape.fps,
            options={"preset": preset, "crf": crf, params: keys + EXTRA_PARAMS[shape.codec]},
        )
        v.width, v.height, v.pix_fmt = shape.width, shape.height, "yuv420p"
        a = out.add_stream("aac", rate=44_100) if shape.audio else None
        n = int(shape.duration_s * shape.fps)
        for i in range(n):
            t = i / shape.fps
            x = int((shape.width * 0.9) * (0.5 + 0.5 * np.sin(t / 7)))
            y = int((shape.height * 0.9) * (0.5 + 0.5 * np.cos(t / 11)))
            img = texture[y : y + shape.height, x : x + shape.width].copy()
            for k in range(3):
                cx = int((0.2 + 0.3 * k + 0.1 * np.sin(t * (k + 1))) * shape.width)
                cy = int((0.5 + 0.4 * np.cos(t * (k + 0.5))) * shape.height)
                r = shape.width // 10
                img[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r] = (
                    60 * k + 40,
                    200 - 50 * k,
                    90,
                )
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, shape.fps)
            out.mux(v.encode(frame))
        out.mux(v.encode())
        if a is not None:
            samples = int(shape.duration_s * 44_100)
            tt = np.arange(samples) / 44_100
            wave = (0.3 * np.sin(2 * np.pi * 220 * tt * (1 + 0.1 * np.sin(tt)))).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = wave[start : start + 1024][None, :]
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 44_100, start, Fraction(1, 44_100)
                out.mux(a.encode(af))
            out.mux(a.encode())


def run_matrix(args: argparse.Namespace) -> None:
    from vdup.runtime import build_checker
    from vdup.settings import Settings

    args.clips.mkdir(parents=True, exist_ok=True)
    shapes = [s for s in matrix_shapes() if args.only in s.name]
    for shape in shapes:
        path = args.clips / shape.name
        if not path.exists():
            t0 = time.perf_counter()
            make_clip(shape, path.with_suffix(".tmp.mp4"))
            path.with_suffix(".tmp.mp4").rename(path)
            print(f"made {shape.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print("| clip | floor p50 ms | check p50 ms | ratio | CPU-s per check |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        checker = build_checker(Settings(data_dir=Path(tmp)))
        for i, f in enumerate(sorted(SPEED.glob("*.mp4"))[:2]):  # a catalog that is not empty
            checker.check(f.read_bytes(), f"seed-{i}")
        for shape in shapes:
            data = (args.clips / shape.name).read_bytes()
            floors, walls, cpus = [], [], []
            for r in range(args.runs + 1):
                fl, _ = floor_s(args.clips / shape.name)
                c0, t0 = time.process_time(), time.perf_counter()
                checker.check(data + b"\0" * (r + 1), None)
                if r:  # the first run warms caches
                    floors.append(fl)
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
            fp, pp = statistics.median(floors) * 1000, statistics.median(walls) * 1000
            print(
                f"| {shape.name} | {fp:.0f} | {pp:.0f} | {pp / fp:.2f} | "
                f"{statistics.median(cpus):.2f} |",
                flush=True,
            )
        checker.catalog.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--matrix", action="store_true", help="the generated matrix of shapes")
    ap.add_argument("--clips", type=Path, default=SPEED.parent.parent.parent / "bench-speed-matrix")
    ap.add_argument("--only", default="", help="only the matrix clips whose name holds this")
    args = ap.parse_args()
    if args.matrix:
        run_matrix(args)
        return
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
