"""Small real videos for tests, encoded in memory with PyAV (H.264 + AAC in MP4).

A "scene" is a seeded random texture with moving shapes, so different seeds give unrelated
content and one seed gives the same content under edits (flip, crop, trim, speed, new audio).
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np


def scene_frame(seed: int, t: float, width: int, height: int) -> np.ndarray:
    """uint8 [height, width, 3]: the scene of ``seed`` at time ``t`` s.

    A random mosaic (nearest-seed-point cells in random colours) with moving discs; the cells
    drift over time and every 2 s the scene cuts to a new mosaic of the same seed.
    """
    shot = int(t // 2)
    rng = np.random.default_rng(seed * 7919 + shot)
    n = int(rng.integers(12, 30))
    pts = rng.uniform(0, 1, (n, 2))
    cols = rng.integers(0, 255, (n, 3))
    yy, xx = np.mgrid[0:height, 0:width]
    gx, gy = xx / width, yy / height
    px = (pts[:, 0, None, None] + 0.03 * t) % 1.0
    d = (gx[None] - px) ** 2 + (gy[None] - pts[:, 1, None, None]) ** 2
    img = cols[np.argmin(d, axis=0)].astype(np.uint8)
    for _ in range(int(rng.integers(3, 6))):
        cx, cy, vx, vy, r = rng.uniform(0, 1, 5)
        x = (cx + 0.2 * (vx - 0.5) * t) % 1.0 * width
        y = (cy + 0.2 * (vy - 0.5) * t) % 1.0 * height
        rad = (0.05 + 0.1 * r) * min(width, height)
        img[(xx - x) ** 2 + (yy - y) ** 2 < rad * rad] = rng.integers(0, 255, 3)
    return img


def make_video(
    seed: int = 1,
    duration_s: float = 4.0,
    width: int = 320,
    height: int = 240,
    fps: int = 15,
    audio_seed: int | None = None,
    with_audio: bool = True,
    with_video: bool = True,
    hflip: bool = False,
    crop: float = 0.0,
    start_s: float = 0.0,
    speed: float = 1.0,
    rotate_metadata: int = 0,
    gop: int = 30,
    container: str = "mp4",
    audio_rate: int = 16000,
    audio_channels: int = 1,
    bframes: int = 0,
) -> bytes:
    """Encode a clip of scene ``seed`` from ``start_s`` for ``duration_s`` (s), played at
    ``speed``; ``crop`` removes that fraction of each border; audio is tones of ``audio_seed``
    (default: the scene seed) so audio can be swapped independently of visuals; ``bframes``
    B-frames at most between two reference frames (x264: the middle one of 2+ is a reference)."""
    buf = io.BytesIO()
    out = av.open(buf, mode="w", format=container)
    v = None
    if with_video:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height = width, height
        v.pix_fmt = "yuv420p"
        v.options = {"g": str(gop), "preset": "ultrafast", "bf": str(bframes)}
        if rotate_metadata:
            v.metadata["rotate"] = str(rotate_metadata)
    a = None
    if with_audio:
        a = out.add_stream("aac", rate=audio_rate)
        a.layout = "mono" if audio_channels == 1 else "stereo"
    n_frames = int(duration_s * fps)
    if v is not None:
        for i in range(n_frames):
            t = start_s + i / fps * speed
            img = scene_frame(seed, t, width, height)
            if crop:
                dy, dx = int(height * crop), int(width * crop)
                inner = scene_frame(seed, t, width + 2 * dx, height + 2 * dy)
                img = inner[dy : dy + height, dx : dx + width]
            if hflip:
                img = img[:, ::-1]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode():
            out.mux(packet)
    if a is not None:
        rng = np.random.default_rng(1000 + (seed if audio_seed is None else audio_seed))
        sr = audio_rate
        t = np.arange(int(duration_s * sr)) / sr
        notes = rng.uniform(200, 2000, 8)
        idx = ((t * speed + start_s) // 0.5).astype(int) % len(notes)
        wave = 0.3 * np.sin(2 * np.pi * notes[idx] * t) + 0.02 * rng.standard_normal(len(t))
        samples = np.stack([wave * (1 - 0.3 * c) for c in range(audio_channels)]).astype(np.float32)
        pts = 0
        for i in range(0, samples.shape[1], 1024):
            chunk = np.ascontiguousarray(samples[:, i : i + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=a.layout.name)
            frame.sample_rate = sr
            frame.pts = pts
            pts += chunk.shape[1]
            for packet in a.encode(frame):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)
    out.close()
    return buf.getvalue()
