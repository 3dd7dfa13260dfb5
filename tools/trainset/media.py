"""Decoded clips in memory, and the one encoder every generated file goes through.

Edits work on whole decoded clips (numpy arrays), not on files, because per-call ffmpeg
round trips dominate the cost of short edits. Every output is then encoded here, last, as
H.264 + AAC in MP4 with the longest side <= 640 px, so no container or codec trait gives a
copy away. Uses only numpy and PyAV (importable in the product venv for the tests).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 44_100  # Hz, mono float32 everywhere
MAX_SIDE = 640  # px
MAX_FPS = 30.0


@dataclass
class Clip:
    """frames: uint8 [n, h, w, 3] RGB; fps: frames per second; audio: float32 [m] mono at
    AUDIO_RATE in [-1, 1], or None for a silent clip."""

    frames: np.ndarray
    fps: float
    audio: np.ndarray | None = None

    @property
    def duration(self) -> float:
        """Seconds of video."""
        return len(self.frames) / self.fps

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in px."""
        return self.frames.shape[1], self.frames.shape[2]

    def with_(self, **kw) -> Clip:
        return replace(self, **kw)


def fit_size(h: int, w: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(h, w) scaled down so the longest side is <= max_side, both even and >= 2."""
    s = min(1.0, max_side / max(h, w))
    return max(2, int(round(h * s / 2)) * 2), max(2, int(round(w * s / 2)) * 2)


def resize_frame(f: np.ndarray, h: int, w: int, interpolation: str = "BILINEAR") -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [h, w, 3] with swscale."""
    if f.shape[0] == h and f.shape[1] == w:
        return f
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
    return vf.reformat(width=w, height=h, format="rgb24", interpolation=interpolation).to_ndarray()


def resize(frames: np.ndarray, h: int, w: int, interpolation: str = "BILINEAR") -> np.ndarray:
    """uint8 [n, H, W, 3] -> uint8 [n, h, w, 3]."""
    if frames.shape[1] == h and frames.shape[2] == w:
        return frames
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, f in enumerate(frames):
        out[i] = resize_frame(f, h, w, interpolation)
    return out


def probe(path: Path) -> tuple[float, bool]:
    """(duration in s, has an audio stream) of a media file, from its container."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        if c.duration:
            d = c.duration / 1e6
        else:
            d = float(v.duration * v.time_base) if v.duration else 0.0
        return d, bool(c.streams.audio)


def _read_audio(path: Path, start: float, duration: float) -> np.ndarray | None:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        if start > 1.0:
            c.seek(int((start - 1.0) * 1e6), any_frame=False, backward=True)
        res = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        chunks, t0 = [], None
        for frame in c.decode(stream):
            if frame.time is None:
                continue
            if frame.time > start + duration + 0.5:
                break
            for o in res.resample(frame):
                if t0 is None:
                    t0 = float(o.time) if o.time is not None else float(frame.time)
                chunks.append(o.to_ndarray().reshape(-1))
    if not chunks:
        return None
    a = np.concatenate(chunks)
    i0 = max(0, int(round((start - t0) * AUDIO_RATE)))
    a = a[i0 : i0 + int(round(duration * AUDIO_RATE))]
    return np.ascontiguousarray(a, dtype=np.float32) if a.size else None


def load(
    path: Path,
    start: float = 0.0,
    duration: float = 1e9,
    max_side: int = MAX_SIDE,
    max_fps: float = MAX_FPS,
) -> Clip:
    """The segment [start, start + duration) s of a file, scaled to longest side <= max_side
    (even dims) and thinned to <= max_fps; audio mono at AUDIO_RATE (None when silent)."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        src_fps = float(s.average_rate or s.guessed_rate or 25)
        fps = min(src_fps, max_fps)
        h, w = fit_size(s.codec_context.height, s.codec_context.width, max_side)
        if start > 0.5:
            c.seek(int(start * 1e6), any_frame=False, backward=True)
        next_t = start
        for f in c.decode(s):
            t = f.time if f.time is not None else next_t
            if t < start - 1e-3:
                continue
            if t >= start + duration:
                break
            if t + 1e-3 < next_t:
                continue
            next_t = max(next_t + 1.0 / fps, t)
            frames.append(f.to_ndarray(width=w, height=h, format="rgb24"))
    if not frames:
        raise ValueError(f"no frames in {path} at {start:.2f}+{duration:.2f} s")
    arr = np.stack(frames)
    audio = _read_audio(path, start, len(arr) / fps)
    return Clip(arr, fps, audio)


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def encode(
    clip: Clip,
    crf: int = 23,
    preset: str = "veryfast",
    max_side: int = MAX_SIDE,
    gop_s: float = 2.0,
) -> bytes:
    """H.264 (yuv420p) + AAC (when the clip has audio) in MP4, longest side <= max_side px with
    even dims; returns the file's bytes."""
    h, w = fit_size(*clip.size, max_side)
    fps = min(clip.fps, MAX_FPS) if clip.fps > 0 else 25.0
    frames = clip.frames
    if fps < clip.fps:
        idx = np.floor(np.arange(int(len(frames) * fps / clip.fps)) * clip.fps / fps)
        frames = frames[np.minimum(idx.astype(int), len(frames) - 1)]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=_rate(fps))
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"crf": str(crf), "preset": preset, "g": str(max(1, int(gop_s * fps)))}
        a = None
        if clip.audio is not None and clip.audio.size:
            a = out.add_stream("aac", rate=AUDIO_RATE)
            a.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(resize_frame(f, h, w)), format="rgb24"
            )
            vf.pts = i
            for p in v.encode(vf):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            audio = np.clip(clip.audio, -1, 1).astype(np.float32)
            for i in range(0, audio.size, 1024):
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[None, i : i + 1024]), format="fltp", layout="mono"
                )
                af.sample_rate, af.pts = AUDIO_RATE, i
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
    return buf.getvalue()


def decode_bytes(data: bytes) -> Clip:
    """An encoded file's bytes back to a Clip (used by the encoding-quality edit)."""
    tmp = io.BytesIO(data)
    frames, audio = [], []
    with av.open(tmp) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    tmp.seek(0)
    with av.open(tmp) as c:
        if c.streams.audio:
            res = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            audio = [
                o.to_ndarray().reshape(-1)
                for f in c.decode(c.streams.audio[0])
                for o in res.resample(f)
            ]
    return Clip(np.stack(frames), fps, np.concatenate(audio) if audio else None)


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes so that ``path`` either does not exist or is complete."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
