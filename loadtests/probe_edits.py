"""How the detector holds up under edits the dev benchmark does not show.

    .venv/bin/python loadtests/probe_edits.py [EDIT ...] [--clips 10] [--audio]

The dev originals go into a fresh catalog; then each of the first ``--clips`` originals (its
first 12 s) is edited with each EDIT below (numpy on decoded frames, re-encoded with libx264),
checked, and deleted again. Without ``--audio`` the copies are silent, so only the visual
evidence can decide; with it they keep the original's soundtrack, as AugLy's edits do by
default. A copy counts as found when it is flagged with the right original. Partners for
hstack, vstack and blend are the dev distractors, whose sources are not in the catalog. Prints
one line per edit.

A probe, not a benchmark to tune on: these edits imitate AugLy's (vflip, hstack, pixelization,
brightness/contrast, meme_format, blend_videos, shift, rotate, perspective_transform_and_shake)
only roughly, and the hidden set's parameters are unknown.
"""

from __future__ import annotations

import argparse
import csv
import io
import tempfile
from pathlib import Path

import av
import numpy as np

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "dev" / "manifest.csv"


def frames_of(path: Path, max_s: float = 12.0) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or 25)
        out = []
        for f in c.decode(s):
            if f.time is not None and f.time > max_s:
                break
            out.append(f.to_ndarray(format="rgb24"))
    return out, fps


AUDIO_RATE = 44_100


def audio_of(path: Path, max_s: float = 12.0) -> np.ndarray:
    """The first ``max_s`` s of the soundtrack: float32 [m] mono at AUDIO_RATE (m = 0: none)."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return np.zeros(0, np.float32)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        chunks = [
            o.to_ndarray().reshape(-1)
            for f in c.decode(c.streams.audio[0])
            for o in resampler.resample(f)
        ]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio[: int(max_s * AUDIO_RATE)]


def encode(frames: list[np.ndarray], fps: float, audio: np.ndarray | None = None) -> bytes:
    """H.264 (and AAC of ``audio``, mono at AUDIO_RATE, when given) in MP4, in memory."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=int(round(fps)))
        h, w = (frames[0].shape[0] // 2 * 2, frames[0].shape[1] // 2 * 2)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = None
        if audio is not None and audio.size:
            a = out.add_stream("aac", rate=AUDIO_RATE)
            a.layout = "mono"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h, :w]), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            for i in range(0, audio.size, 1024):
                chunk = np.ascontiguousarray(audio[None, i : i + 1024], dtype=np.float32)
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate, af.pts = AUDIO_RATE, i
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return buf.getvalue()


def resize(f: np.ndarray, h: int, w: int) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
    return frame.to_ndarray(width=w, height=h, format="rgb24")


def pixelize(f: np.ndarray, k: int = 8) -> np.ndarray:
    h, w = f.shape[:2]
    return np.repeat(np.repeat(f[::k, ::k], k, 0), k, 1)[:h, :w]


def shake(f: np.ndarray, i: int) -> np.ndarray:
    h, w = f.shape[:2]
    top, left = int(3 + 3 * np.sin(i)), 10 + int(4 * np.cos(i / 2))
    return resize(f[top : h - 10, left : w - 6], h, w)


# edit(frame, index, partner frames) -> frame
EDITS = {
    "vflip": lambda f, i, o: f[::-1],
    "rot180": lambda f, i, o: f[::-1, ::-1],
    "rot90": lambda f, i, o: np.ascontiguousarray(np.rot90(f)),
    "hstack": lambda f, i, o: np.concatenate([f, resize(o[i % len(o)], *f.shape[:2])], axis=1),
    "vstack": lambda f, i, o: np.concatenate([resize(o[i % len(o)], *f.shape[:2]), f], axis=0),
    "blend": lambda f, i, o: (0.5 * f + 0.5 * resize(o[i % len(o)], *f.shape[:2])).astype(np.uint8),
    "pixelize": lambda f, i, o: pixelize(f),
    "bright_contrast": lambda f, i, o: np.clip(
        (f.astype(np.float32) - 128) * 0.6 + 178, 0, 255
    ).astype(np.uint8),
    "meme": lambda f, i, o: np.concatenate(
        [np.full((f.shape[0] // 3, f.shape[1], 3), 255, np.uint8), f], axis=0
    ),
    "shift": lambda f, i, o: np.roll(f, (f.shape[0] // 5, f.shape[1] // 5), axis=(0, 1)),
    "perspective_shake": lambda f, i, o: shake(f, i),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("edits", nargs="*", help=f"some of: {' '.join(EDITS)} (default: all)")
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--manifest", type=Path, default=DEV)
    ap.add_argument(
        "--audio",
        action="store_true",
        help="keep the original's soundtrack (AugLy's edits keep it by default)",
    )
    args = ap.parse_args()
    args.edits = args.edits or list(EDITS)
    if unknown := set(args.edits) - set(EDITS):
        ap.error(f"unknown edits: {' '.join(sorted(unknown))}")
    if not args.manifest.exists():
        raise SystemExit(f"no dev benchmark at {args.manifest}")
    from vdup.runtime import build_checker
    from vdup.settings import Settings

    rows = list(csv.DictReader(open(args.manifest)))
    originals = sorted((r for r in rows if r["kind"] == "original"), key=lambda r: r["created"])
    partners = [r for r in rows if r["kind"] == "distractor"]
    found: dict[str, list[tuple[bool, float]]] = {e: [] for e in args.edits}
    with tempfile.TemporaryDirectory() as tmp:
        checker = build_checker(Settings(data_dir=Path(tmp)))
        for r in originals:
            checker.check((args.manifest.parent / r["link"]).read_bytes(), r["uuid"])
        for k, r in enumerate(originals[: args.clips]):
            frames, fps = frames_of(args.manifest.parent / r["link"])
            other, _ = frames_of(args.manifest.parent / partners[k % len(partners)]["link"])
            sound = audio_of(args.manifest.parent / r["link"]) if args.audio else None
            for name in args.edits:
                data = encode([EDITS[name](f, i, other) for i, f in enumerate(frames)], fps, sound)
                rec = checker.check(data, f"{name}-{k}").record
                found[name].append((rec.is_duplicate and rec.duplicate_for == r["uuid"], rec.score))
                checker.catalog.delete(f"{name}-{k}")
        checker.catalog.close()
    print("| edit | found | scores |")
    print("|---|---|---|")
    for name, v in found.items():
        scores = " ".join(f"{s:.2f}{'' if ok else '✗'}" for ok, s in v)
        print(f"| {name} | {sum(ok for ok, _ in v)}/{len(v)} | {scores} |")


if __name__ == "__main__":
    main()
