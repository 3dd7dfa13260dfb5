"""Edits done by Meta's AugLy 1.0.0 itself, for the exact look of its overlays.

AugLy works on files through ffmpeg, so each call writes the clip to a temporary file and
reads the result back (0.5–5 s a call, README.md). The sampler uses these for a share of the
overlay/spatial edits (``--augly-share``), the faster in-memory versions for the rest. AugLy
is imported on first use only, after stand-ins for torch/torchaudio (NOTES.md, "AugLy
1.0.0"); this module can be imported, and the registry listed, without it.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

from tools.trainset.edits import _u, register
from tools.trainset.media import encode, load, write_atomic


def available() -> bool:
    """AugLy and the ffmpeg CLI it calls are both installed."""
    return importlib.util.find_spec("augly") is not None and shutil.which("ffmpeg") is not None


def _augly_video():
    if "augly.video" not in sys.modules:
        for name in ("torch", "torchaudio", "torchaudio.sox_effects"):
            sys.modules.setdefault(name, types.ModuleType(name))
        if not hasattr(np, "float"):
            np.float = float  # AugLy's perspective helpers still use the removed alias
    import augly.video as vidaugs

    return vidaugs


def _run(clip, fn, **kw):
    """Round-trip ``clip`` (with a silent track) through AugLy function ``fn(in, out, **kw)``; the clip's
    own soundtrack is put back, cut to the new length."""
    vidaugs = _augly_video()
    with tempfile.TemporaryDirectory(prefix="augly-") as d:
        src, dst = Path(d) / "in.mp4", Path(d) / "out.mp4"
        silent = np.zeros(int(clip.duration * 44_100), np.float32)  # AugLy maps 0:a:0
        write_atomic(src, encode(clip.with_(audio=silent), crf=12, preset="ultrafast"))
        getattr(vidaugs, fn)(str(src), output_path=str(dst), **kw)
        out = load(dst)
    audio = clip.audio
    if audio is not None:
        audio = audio[: int(out.duration * 44_100)]
    return out.with_(audio=audio, fps=out.fps)


@register("augly_overlay_text", "overlay", backend="augly")
def augly_overlay_text(clip, rng, partner):
    kw = {
        "text_len": int(rng.integers(4, 16)),
        "fontscales": (0.5, 1.5),
        "random_movement": bool(rng.random() < 0.3),
    }
    return _run(clip, "overlay_text", **kw), {k: v for k, v in kw.items() if k != "fontscales"}


@register("augly_overlay_emoji", "overlay", backend="augly")
def augly_overlay_emoji(clip, rng, partner):
    kw = {
        "x_factor": _u(rng, 0.05, 0.7),
        "y_factor": _u(rng, 0.05, 0.7),
        "opacity": _u(rng, 0.5, 1.0),
        "emoji_size": _u(rng, 0.1, 0.35),
    }
    return _run(clip, "overlay_emoji", **kw), {k: round(v, 3) for k, v in kw.items()}


@register("augly_overlay_shapes", "overlay", backend="augly")
def augly_overlay_shapes(clip, rng, partner):
    kw = {"num_shapes": int(rng.integers(1, 5))}
    return _run(clip, "overlay_shapes", **kw), kw


@register("augly_overlay_dots", "overlay", backend="augly")
def augly_overlay_dots(clip, rng, partner):
    kw = {"num_dots": int(rng.integers(50, 300)), "dot_type": str(rng.choice(["colored", "blur"]))}
    return _run(clip, "overlay_dots", **kw), kw


@register("augly_perspective_shake", "spatial", backend="augly")
def augly_perspective_shake(clip, rng, partner):
    kw = {
        "sigma": _u(rng, 10, 60),
        "shake_radius": _u(rng, 0, 8),
        "seed": int(rng.integers(0, 2**31)),
    }
    return _run(clip, "perspective_transform_and_shake", **kw), {
        k: round(v, 3) if isinstance(v, float) else v for k, v in kw.items()
    }


AUGLY_TWINS = {
    "overlay_text": "augly_overlay_text",
    "overlay_emoji": "augly_overlay_emoji",
    "overlay_shapes": "augly_overlay_shapes",
}  # AugLy's dots (17 s) and perspective_shake (11 s) are too slow to sample: bench only
