"""The copy edits of VSC22/AugLy, written on decoded clips in numpy (and PyAV's swscale).

Why our own: AugLy's video functions each spawn ffmpeg on files (0.5–5 s a call on a 10 s
640 px clip, see README.md), while the same edit on frames already in memory costs a few
tenths of a second. AugLy is still used where its look matters and only it has the assets
(its fonts, emojis and screenshot templates are read from its package when installed; see
``augly_edits.py`` for the edits that call AugLy itself).

Every edit is ``fn(clip, rng, partner) -> (clip, params)``: ``partner`` is a Clip of unrelated
footage (another source) for the edits that need one, else None; ``params`` is a JSON-able
dict of what was sampled. Each edit belongs to one family of ``FAMILIES``.
"""

from __future__ import annotations

import importlib.util
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.trainset.media import (
    AUDIO_RATE,
    Clip,
    decode_bytes,
    encode,
    fit_size,
    resize,
    resize_frame,
)

EditFn = Callable[[Clip, np.random.Generator, "Clip | None"], tuple[Clip, dict]]


@dataclass(frozen=True)
class Edit:
    """name: registry key; family: one of FAMILY_NAMES; needs: None, "video" (partner visuals)
    or "audio" (partner soundtrack); backend: "numpy", "pil" (needs Pillow) or "augly"."""

    name: str
    family: str
    fn: EditFn
    needs: str | None = None
    backend: str = "numpy"


FAMILY_NAMES = ("spatial", "overlay", "blend_stack", "quality", "temporal", "audio")
EDITS: dict[str, Edit] = {}
FAMILIES: dict[str, str] = {}  # edit name -> family
TEMPLATE_EDITS = ("meme_format", "overlay_onto_screenshot", "overlay_text")


def register(name: str, family: str, needs: str | None = None, backend: str = "numpy"):
    assert family in FAMILY_NAMES, family

    def deco(fn: EditFn) -> EditFn:
        EDITS[name] = Edit(name, family, fn, needs, backend)
        FAMILIES[name] = family
        return fn

    return deco


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def augly_assets() -> Path | None:
    """AugLy's bundled asset folder (fonts, twemojis, screenshot templates), found without
    importing AugLy; None when it is not installed."""
    spec = importlib.util.find_spec("augly")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "assets"
    return p if p.is_dir() else None


def fit_partner(partner: Clip, n: int, h: int, w: int, fps: float) -> np.ndarray:
    """uint8 [n, h, w, 3]: the partner's frames at ``fps``, resized, looped when too short."""
    idx = np.floor(np.arange(n) * partner.fps / fps).astype(int) % len(partner.frames)
    uniq, inv = np.unique(idx, return_inverse=True)
    small = resize(partner.frames[uniq], h, w)
    return small[inv]


def fit_audio(audio: np.ndarray | None, m: int) -> np.ndarray | None:
    """float32 [m]: ``audio`` looped or cut to m samples (None stays None)."""
    if audio is None or not audio.size:
        return None
    return np.resize(audio, m).astype(np.float32)


def paste(
    frames: np.ndarray, img: np.ndarray, y: int, x: int, alpha: np.ndarray | float = 1.0
) -> np.ndarray:
    """Blend the static uint8 [h, w, 3] ``img`` (alpha: scalar or float [h, w, 1] in [0, 1])
    into every frame at top-left (y, x), clipped to the frame; in place, returns frames."""
    H, W = frames.shape[1:3]
    h, w = img.shape[:2]
    y0, x0, y1, x1 = max(0, y), max(0, x), min(H, y + h), min(W, x + w)
    if y1 <= y0 or x1 <= x0:
        return frames
    sub = img[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
    a = alpha if np.isscalar(alpha) else alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    reg = frames[:, y0:y1, x0:x1].astype(np.float32)
    frames[:, y0:y1, x0:x1] = (reg * (1 - a) + sub * a).astype(np.uint8)
    return frames


def _gather(frames: np.ndarray, sy: np.ndarray, sx: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """frames[:, sy, sx] with zeros where not valid; sy, sx int [h, w]."""
    out = frames[:, np.clip(sy, 0, frames.shape[1] - 1), np.clip(sx, 0, frames.shape[2] - 1)]
    out[:, ~valid] = 0
    return out


# ---------------------------------------------------------------- spatial


@register("crop", "spatial")
def crop(clip, rng, partner):
    h, w = clip.size
    fh, fw = _u(rng, 0.5, 0.9), _u(rng, 0.5, 0.9)
    ch, cw = max(16, int(h * fh)), max(16, int(w * fw))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return clip.with_(frames=clip.frames[:, y : y + ch, x : x + cw].copy()), {
        "y": y,
        "x": x,
        "h": ch,
        "w": cw,
    }


@register("pad", "spatial")
def pad(clip, rng, partner):
    h, w = clip.size
    t, b, l, r = (int(_u(rng, 0.0, 0.25) * s) for s in (h, h, w, w))
    if t + b + l + r < 0.1 * (h + w):
        t = b = int(0.08 * h)
    color = rng.integers(0, 256, 3).astype(np.uint8)
    out = np.empty((len(clip.frames), h + t + b, w + l + r, 3), np.uint8)
    out[:] = color
    out[:, t : t + h, l : l + w] = clip.frames
    return clip.with_(frames=out), {
        "top": t,
        "bottom": b,
        "left": l,
        "right": r,
        "color": color.tolist(),
    }


@register("scale", "spatial")
def scale(clip, rng, partner):
    f = _u(rng, 0.25, 0.8)
    h, w = clip.size
    nh, nw = max(16, int(h * f) // 2 * 2), max(16, int(w * f) // 2 * 2)
    return clip.with_(frames=resize(clip.frames, nh, nw)), {"factor": round(f, 3)}


def _rotation_map(h: int, w: int, deg: float):
    th = np.deg2rad(deg)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    sx = np.cos(th) * (xx - cx) + np.sin(th) * (yy - cy) + cx
    sy = -np.sin(th) * (xx - cx) + np.cos(th) * (yy - cy) + cy
    sy, sx = np.rint(sy).astype(int), np.rint(sx).astype(int)
    return sy, sx, (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)


@register("rotate", "spatial")
def rotate(clip, rng, partner):
    deg = _u(rng, 3, 30) * rng.choice([-1, 1])
    sy, sx, valid = _rotation_map(*clip.size, deg)
    return clip.with_(frames=_gather(clip.frames, sy, sx, valid)), {"degrees": round(deg, 2)}


@register("rotate90", "spatial")
def rotate90(clip, rng, partner):
    k = int(rng.choice([1, 2, 3]))
    return clip.with_(frames=np.ascontiguousarray(np.rot90(clip.frames, k, axes=(1, 2)))), {
        "degrees": 90 * k
    }


@register("hflip", "spatial")
def hflip(clip, rng, partner):
    return clip.with_(frames=np.ascontiguousarray(clip.frames[:, :, ::-1])), {}


@register("vflip", "spatial")
def vflip(clip, rng, partner):
    return clip.with_(frames=np.ascontiguousarray(clip.frames[:, ::-1])), {}


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 H with H @ [x, y, 1] ~ dst for the 4 point pairs src, dst (float [4, 2])."""
    a = []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y, u])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y, v])
    a = np.asarray(a, np.float64)
    hvec = np.linalg.solve(a[:, :8], a[:, 8])
    return np.append(hvec, 1.0).reshape(3, 3)


@register("perspective_shake", "spatial")
def perspective_shake(clip, rng, partner):
    h, w = clip.size
    sigma = _u(rng, 0.03, 0.12)
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    moved = corners + rng.normal(0, sigma, (4, 2)) * [w, h]
    hm = homography(corners, moved)  # output pixel -> source pixel
    yy, xx = np.mgrid[0:h, 0:w]
    p = hm @ np.stack([xx.ravel(), yy.ravel(), np.ones(h * w)])
    sx0, sy0 = (p[0] / p[2]).reshape(h, w), (p[1] / p[2]).reshape(h, w)
    radius = _u(rng, 0.0, 0.03) * max(h, w)
    walk = np.cumsum(rng.normal(0, 1, (len(clip.frames), 2)), axis=0)
    walk = radius * walk / max(1e-6, np.abs(walk).max())
    out = np.empty_like(clip.frames)
    for i, f in enumerate(clip.frames):
        sy, sx = np.rint(sy0 + walk[i, 0]).astype(int), np.rint(sx0 + walk[i, 1]).astype(int)
        valid = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
        out[i] = _gather(f[None], sy, sx, valid)[0]
    return clip.with_(frames=out), {"sigma": round(sigma, 3), "shake_px": round(radius, 1)}


@register("aspect_ratio", "spatial")
def aspect_ratio(clip, rng, partner):
    h, w = clip.size
    r = _u(rng, 0.55, 1.6)
    nw = max(16, int(w * r) // 2 * 2)
    return clip.with_(frames=resize(clip.frames, h, nw)), {"width_factor": round(r, 3)}


def blur_frame(f: np.ndarray, factor: float) -> np.ndarray:
    """A blurred uint8 [h, w, 3]: down by ``factor`` then back up (bilinear)."""
    h, w = f.shape[:2]
    small = resize_frame(f, max(2, int(h / factor)), max(2, int(w / factor)), "AREA")
    return resize_frame(small, h, w, "BILINEAR")


@register("reframe_916", "spatial")
def reframe_916(clip, rng, partner):
    H, W = 640, 360
    h, w = clip.size
    s = min(W / w, H / h)
    fh, fw = max(2, int(h * s) // 2 * 2), max(2, int(w * s) // 2 * 2)
    ch, cw = (h, int(h * W / H)) if w / h > W / H else (int(w * H / W), w)
    cy, cx = (h - ch) // 2, (w - cw) // 2
    k = _u(rng, 12, 30)
    out = np.empty((len(clip.frames), H, W, 3), np.uint8)
    y, x = (H - fh) // 2, (W - fw) // 2
    for i, f in enumerate(clip.frames):
        bg = resize_frame(
            f[cy : cy + ch, cx : cx + cw], max(2, int(H / k)), max(2, int(W / k)), "AREA"
        )
        out[i] = resize_frame(bg, H, W, "BILINEAR")
        out[i, y : y + fh, x : x + fw] = resize_frame(f, fh, fw)
    return clip.with_(frames=out), {"blur_factor": round(k, 1)}


# ---------------------------------------------------------------- overlays (numpy)


def _disc(r: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    m = yy**2 + xx**2 <= r * r
    return yy[m], xx[m]


@register("overlay_dots", "overlay")
def overlay_dots(clip, rng, partner):
    n, h, w = len(clip.frames), *clip.size
    k, r = int(rng.integers(40, 300)), int(rng.integers(1, 4))
    pos = rng.uniform(0, 1, (k, 2)) * [h, w]
    vel = rng.normal(0, 1.5, (k, 2)) * bool(rng.random() < 0.6)
    cols = rng.integers(0, 256, (k, 3)).astype(np.uint8)
    dy, dx = _disc(r)
    out = clip.frames.copy()
    for i in range(n):
        p = (pos + vel * i) % [h, w]
        ys = (p[:, :1].astype(int) + dy[None]) % h
        xs = (p[:, 1:].astype(int) + dx[None]) % w
        out[i, ys, xs] = cols[:, None]
    return clip.with_(frames=out), {"dots": k, "radius": r, "moving": bool(vel.any())}


@register("overlay_shapes", "overlay")
def overlay_shapes(clip, rng, partner):
    n, h, w = len(clip.frames), *clip.size
    out = clip.frames.copy()
    k = int(rng.integers(1, 6))
    yy, xx = np.mgrid[0:h, 0:w]
    shapes = []
    for _ in range(k):
        kind = str(rng.choice(["rect", "circle"]))
        size = _u(rng, 0.05, 0.3) * min(h, w)
        c0, v = rng.uniform(0, 1, 2) * [h, w], rng.normal(0, 2, 2) * bool(rng.random() < 0.5)
        col, a = rng.integers(0, 256, 3).astype(np.float32), _u(rng, 0.5, 1.0)
        shapes.append(kind)
        for i in range(n):
            cy, cx = (c0 + v * i) % [h, w]
            if kind == "rect":
                m = (np.abs(yy - cy) < size / 2) & (np.abs(xx - cx) < size * 0.8)
            else:
                m = (yy - cy) ** 2 + (xx - cx) ** 2 < (size / 2) ** 2
            out[i][m] = (out[i][m] * (1 - a) + col * a).astype(np.uint8)
    return clip.with_(frames=out), {"shapes": shapes}


def _place(rng: np.random.Generator, H: int, W: int, h: int, w: int) -> tuple[int, int]:
    return int(rng.integers(0, max(1, H - h + 1))), int(rng.integers(0, max(1, W - w + 1)))


@register("overlay_onto_video", "overlay", needs="video")
def overlay_onto_video(clip, rng, partner):
    """The clip at 50–85 % of the partner's frame, over the partner video."""
    return _inside(clip, partner, rng, clip_inside=True, lo=0.5, hi=0.85)


@register("pip_in_other", "overlay", needs="video")
def pip_in_other(clip, rng, partner):
    """The clip small (20–45 %) inside the partner video."""
    return _inside(clip, partner, rng, clip_inside=True, lo=0.2, hi=0.45)


@register("pip_other_in", "overlay", needs="video")
def pip_other_in(clip, rng, partner):
    """The partner video small (15–35 %) inside the clip."""
    return _inside(clip, partner, rng, clip_inside=False, lo=0.15, hi=0.35)


def _inside(clip: Clip, partner: Clip, rng, clip_inside: bool, lo: float, hi: float):
    n = len(clip.frames)
    ph, pw = fit_size(*partner.size)
    h, w = clip.size
    if clip_inside:
        bg = fit_partner(partner, n, ph, pw, clip.fps)
        fg_src, H, W = clip.frames, ph, pw
    else:
        bg, fg_src, H, W = clip.frames.copy(), None, h, w
    f = _u(rng, lo, hi)
    sh, sw = (h, w) if clip_inside else partner.size
    s = f * min(H / sh, W / sw)
    fh, fw = max(8, int(sh * s) // 2 * 2), max(8, int(sw * s) // 2 * 2)
    fg = resize(fg_src, fh, fw) if clip_inside else fit_partner(partner, n, fh, fw, clip.fps)
    y, x = _place(rng, H, W, fh, fw)
    bg[:, y : y + fh, x : x + fw] = fg
    return clip.with_(frames=bg), {"fraction": round(f, 3), "y": y, "x": x}


# ---------------------------------------------------------------- blend / stack


@register("blend", "blend_stack", needs="video")
def blend(clip, rng, partner):
    a = _u(rng, 0.4, 0.75)
    other = fit_partner(partner, len(clip.frames), *clip.size, clip.fps)
    out = np.empty_like(clip.frames)
    for i in range(0, len(out), 32):
        out[i : i + 32] = (clip.frames[i : i + 32] * a + other[i : i + 32] * (1 - a)).astype(
            np.uint8
        )
    return clip.with_(frames=out), {"clip_opacity": round(a, 3)}


def _stack(clip, rng, partner, axis: int):
    other = fit_partner(partner, len(clip.frames), *clip.size, clip.fps)
    first = bool(rng.random() < 0.5)
    parts = [clip.frames, other] if first else [other, clip.frames]
    return clip.with_(frames=np.concatenate(parts, axis=axis)), {"clip_first": first}


@register("hstack", "blend_stack", needs="video")
def hstack(clip, rng, partner):
    return _stack(clip, rng, partner, axis=2)


@register("vstack", "blend_stack", needs="video")
def vstack(clip, rng, partner):
    return _stack(clip, rng, partner, axis=1)


# ---------------------------------------------------------------- quality


def _lut(frames: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return np.clip(lut, 0, 255).astype(np.uint8)[frames]


@register("pixelization", "quality")
def pixelization(clip, rng, partner):
    k = int(rng.integers(3, 13))
    _n, h, w = len(clip.frames), *clip.size
    small = resize(clip.frames, max(2, h // k), max(2, w // k), "AREA")
    return clip.with_(frames=resize(small, h, w, "POINT")), {"block": k}


@register("brightness", "quality")
def brightness(clip, rng, partner):
    d = _u(rng, 30, 90) * rng.choice([-1, 1])
    return clip.with_(frames=_lut(clip.frames, np.arange(256) + d)), {"delta": round(d, 1)}


@register("contrast", "quality")
def contrast(clip, rng, partner):
    c = float(rng.choice([_u(rng, 0.35, 0.7), _u(rng, 1.3, 2.0)]))
    return clip.with_(frames=_lut(clip.frames, (np.arange(256) - 128) * c + 128)), {
        "factor": round(c, 3)
    }


def _luma(frames: np.ndarray) -> np.ndarray:
    """uint8 [n, h, w, 3] -> uint8 [n, h, w] (swscale's RGB -> gray)."""
    import av

    return np.stack(
        [
            av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            .reformat(format="gray")
            .to_ndarray()
            for f in frames
        ]
    )


def _saturate(frames: np.ndarray, s: float) -> np.ndarray:
    if s == 0.0:
        return np.repeat(_luma(frames)[..., None], 3, axis=-1)
    out = np.empty_like(frames)
    for i in range(0, len(frames), 32):
        f = frames[i : i + 32].astype(np.float32)
        g = f @ np.array([0.299, 0.587, 0.114], np.float32)
        out[i : i + 32] = np.clip(g[..., None] + (f - g[..., None]) * s, 0, 255).astype(np.uint8)
    return out


@register("saturation", "quality")
def saturation(clip, rng, partner):
    s = float(rng.choice([_u(rng, 0.0, 0.5), _u(rng, 1.5, 3.0)]))
    return clip.with_(frames=_saturate(clip.frames, s)), {"factor": round(s, 3)}


@register("grayscale", "quality")
def grayscale(clip, rng, partner):
    return clip.with_(frames=_saturate(clip.frames, 0.0)), {}


@register("color_jitter", "quality")
def color_jitter(clip, rng, partner):
    gains = rng.uniform(0.75, 1.25, 3)
    b, c = _u(rng, -30, 30), _u(rng, 0.8, 1.25)
    base = (np.arange(256)[:, None] - 128) * c + 128 + b
    lut = np.clip(base * gains[None], 0, 255).astype(np.uint8)  # [256, 3]
    out = np.stack([lut[clip.frames[..., k], k] for k in range(3)], axis=-1)
    return clip.with_(frames=out), {
        "gains": np.round(gains, 3).tolist(),
        "brightness": round(b, 1),
        "contrast": round(c, 3),
    }


@register("blur", "quality")
def blur(clip, rng, partner):
    k = _u(rng, 2.5, 8)
    out = np.stack([blur_frame(f, k) for f in clip.frames])
    return clip.with_(frames=out), {"factor": round(k, 2)}


@register("sharpen", "quality")
def sharpen(clip, rng, partner):
    a = _u(rng, 0.8, 2.5)
    out = np.empty_like(clip.frames)
    for i, f in enumerate(clip.frames):
        ff = f.astype(np.float32)
        out[i] = np.clip(ff + a * (ff - blur_frame(f, 3)), 0, 255).astype(np.uint8)
    return clip.with_(frames=out), {"amount": round(a, 2)}


@register("noise", "quality")
def noise(clip, rng, partner):
    sd = _u(rng, 6, 30)
    h, w = clip.size
    bank = np.clip(rng.normal(0, sd, (4, h, w, 3)), -127, 127).astype(np.int16)
    out = np.empty_like(clip.frames)
    for i, f in enumerate(clip.frames):
        out[i] = np.clip(f + bank[int(rng.integers(0, 4))], 0, 255).astype(np.uint8)
    return clip.with_(frames=out), {"std": round(sd, 1)}


@register("encoding_quality", "quality")
def encoding_quality(clip, rng, partner):
    crf = int(rng.integers(36, 50))
    back = decode_bytes(encode(clip.with_(audio=None), crf=crf, preset="ultrafast"))
    return clip.with_(frames=back.frames), {"crf": crf}


@register("fps_change", "quality")
def fps_change(clip, rng, partner):
    fps = _u(rng, 5, max(6, min(20, clip.fps - 2)))
    n = max(1, int(len(clip.frames) * fps / clip.fps))
    idx = np.minimum((np.arange(n) * clip.fps / fps).astype(int), len(clip.frames) - 1)
    return clip.with_(frames=clip.frames[idx], fps=fps), {"fps": round(fps, 2)}


# ---------------------------------------------------------------- temporal


def stretch(audio: np.ndarray, factor: float, win: int = 1024, tol: int = 256) -> np.ndarray:
    """float32 [round(m * factor)]: ``audio`` [m] made longer (factor > 1) or shorter,
    keeping the pitch (WSOLA: each grain is taken near its nominal place where it best
    continues the previous one)."""
    m_out = max(1, int(round(len(audio) * factor)))
    hop = win // 2
    x = np.concatenate([audio.astype(np.float32), np.zeros(2 * win + 2 * tol, np.float32)])
    window = np.hanning(win).astype(np.float32)
    out = np.zeros(m_out + win, np.float32)
    norm = np.zeros(m_out + win, np.float32)
    prev = 0
    for k, t in enumerate(range(0, m_out, hop)):
        nominal = min(int(t / factor), len(audio))
        pos = nominal
        if k:
            target = x[prev + hop : prev + hop + win]
            lo = max(0, nominal - tol)
            corr = np.correlate(x[lo : nominal + tol + win], target, mode="valid")
            pos = lo + int(np.argmax(corr))
        out[t : t + win] += x[pos : pos + win] * window
        norm[t : t + win] += window
        prev = pos
    return (out / np.maximum(norm, 1e-3))[:m_out]


def _frames_at(clip: Clip, n: int, rate: float) -> np.ndarray:
    idx = np.minimum((np.arange(n) * rate).astype(int), len(clip.frames) - 1)
    return clip.frames[idx]


@register("speed", "temporal")
def speed(clip, rng, partner):
    f = float(rng.choice([_u(rng, 0.5, 0.85), _u(rng, 1.2, 2.0)]))
    n = max(2, int(len(clip.frames) / f))
    audio = None if clip.audio is None else stretch(clip.audio, 1 / f)
    return clip.with_(frames=_frames_at(clip, n, f), audio=audio), {"factor": round(f, 3)}


def _cut(clip: Clip, start: float, dur: float) -> Clip:
    i0 = int(start * clip.fps)
    i1 = max(i0 + 1, int((start + dur) * clip.fps))
    audio = None
    if clip.audio is not None:
        audio = clip.audio[int(start * AUDIO_RATE) : int((start + dur) * AUDIO_RATE)]
        audio = audio if audio.size else None
    return clip.with_(frames=clip.frames[i0:i1], audio=audio)


@register("time_crop", "temporal")
def time_crop(clip, rng, partner):
    d = clip.duration
    keep = min(d, max(1.5, _u(rng, 0.4, 0.9) * d))
    start = _u(rng, 0, max(0.0, d - keep))
    return _cut(clip, start, keep), {"start_s": round(start, 2), "duration_s": round(keep, 2)}


@register("loop", "temporal")
def loop(clip, rng, partner):
    times = int(rng.integers(2, 4))
    times = max(2, min(times, int(30 // max(clip.duration, 1e-3))))
    audio = None if clip.audio is None else np.tile(clip.audio, times)
    return clip.with_(frames=np.concatenate([clip.frames] * times), audio=audio), {"times": times}


def _join(parts: list[Clip], fps: float) -> Clip:
    frames = np.concatenate([p.frames for p in parts])
    if all(p.audio is None for p in parts):
        return Clip(frames, fps, None)
    tracks = []
    for p in parts:
        m = int(round(len(p.frames) / fps * AUDIO_RATE))
        tracks.append(fit_audio(p.audio, m) if p.audio is not None else np.zeros(m, np.float32))
    return Clip(frames, fps, np.concatenate(tracks))


def _footage(partner: Clip, start: float, dur: float, h: int, w: int, fps: float) -> Clip:
    n = max(1, int(dur * fps))
    shifted = partner.with_(frames=np.roll(partner.frames, -int(start * partner.fps), axis=0))
    m = int(dur * AUDIO_RATE)
    audio = (
        None
        if partner.audio is None
        else fit_audio(np.roll(partner.audio, -int(start * AUDIO_RATE)), m)
    )
    return Clip(fit_partner(shifted, n, h, w, fps), fps, audio)


@register("insert_in_footage", "temporal", needs="video")
def insert_in_footage(clip, rng, partner):
    """The whole clip between 1–4 s of unrelated footage before and 0–4 s after."""
    before, after = _u(rng, 1, 4), _u(rng, 0, 4)
    h, w = clip.size
    parts = [_footage(partner, 0, before, h, w, clip.fps), clip]
    if after > 0.3:
        parts.append(_footage(partner, before, after, h, w, clip.fps))
    return _join(parts, clip.fps), {"before_s": round(before, 2), "after_s": round(after, 2)}


@register("partial_insert", "temporal", needs="video")
def partial_insert(clip, rng, partner):
    """A 1.5–4 s piece of the clip inside 2–6 s of unrelated footage on each side."""
    piece = min(clip.duration, _u(rng, 1.5, 4.0))
    start = _u(rng, 0, max(0.0, clip.duration - piece))
    before, after = _u(rng, 2, 6), _u(rng, 2, 6)
    ph, pw = fit_size(*partner.size)
    inner = _cut(clip, start, piece)
    inner = inner.with_(frames=resize(inner.frames, ph, pw))
    parts = [
        _footage(partner, 0, before, ph, pw, clip.fps),
        inner,
        _footage(partner, before, after, ph, pw, clip.fps),
    ]
    return _join(parts, clip.fps), {
        "piece_start_s": round(start, 2),
        "piece_s": round(piece, 2),
        "before_s": round(before, 2),
        "after_s": round(after, 2),
    }


# ---------------------------------------------------------------- audio


@register("audio_replace", "audio", needs="audio")
def audio_replace(clip, rng, partner):
    m = int(round(clip.duration * AUDIO_RATE))
    return clip.with_(audio=fit_audio(partner.audio, m)), {}


@register("audio_remove", "audio")
def audio_remove(clip, rng, partner):
    return clip.with_(audio=None), {}


def pitch_shift_audio(audio: np.ndarray, semitones: float) -> np.ndarray:
    """float32 [m]: ``audio`` [m] with its pitch moved by ``semitones``, same length."""
    r = 2.0 ** (semitones / 12)
    longer = stretch(audio, r)
    x = np.linspace(0, len(longer) - 1, len(audio))
    return np.interp(x, np.arange(len(longer)), longer).astype(np.float32)


@register("pitch_shift", "audio")
def pitch_shift(clip, rng, partner):
    s = _u(rng, 2, 6) * rng.choice([-1, 1])
    if clip.audio is None:
        return clip, {"semitones": 0.0}
    return clip.with_(audio=pitch_shift_audio(clip.audio, s)), {"semitones": round(s, 2)}


@register("audio_noise", "audio")
def audio_noise(clip, rng, partner):
    snr = _u(rng, 3, 20)
    if clip.audio is None:
        return clip, {"snr_db": None}
    p = float(np.mean(clip.audio**2)) + 1e-8
    n = rng.normal(0, np.sqrt(p / 10 ** (snr / 10)), clip.audio.size).astype(np.float32)
    return clip.with_(audio=clip.audio + n), {"snr_db": round(snr, 1)}


@register("volume", "audio")
def volume(clip, rng, partner):
    db = float(rng.choice([_u(rng, -15, -4), _u(rng, 3, 10)]))
    if clip.audio is None:
        return clip, {"gain_db": 0.0}
    return clip.with_(audio=np.clip(clip.audio * 10 ** (db / 20), -1, 1)), {"gain_db": round(db, 1)}


def random_text(rng: np.random.Generator, words: tuple[int, int] = (1, 5)) -> str:
    """A caption of random lowercase words (distinct per draw)."""
    n = int(rng.integers(*words))
    letters = list(string.ascii_lowercase)
    return " ".join("".join(rng.choice(letters, int(rng.integers(2, 9)))) for _ in range(n))


def apply_chain(
    clip: Clip,
    names: list[str],
    rng: np.random.Generator,
    partners: dict[int, Clip],
    seeds: dict[int, int] | None = None,
) -> tuple[Clip, list[dict]]:
    """Apply edits ``names`` in order; partners[i] feeds edit i; seeds[i], when given, seeds
    edit i's parameters (so a template negative repeats a copy's template exactly). Returns
    the clip and one {"name", "params"} per edit."""
    done = []
    for i, name in enumerate(names):
        r = np.random.default_rng(seeds[i]) if seeds and i in seeds else rng
        clip, params = EDITS[name].fn(clip, r, partners.get(i))
        done.append({"name": name, "params": params})
    return clip, done


from tools.trainset import overlays as _overlays  # noqa: E402,F401  (registers the PIL edits)
