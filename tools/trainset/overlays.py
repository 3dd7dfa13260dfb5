"""Overlay edits that draw text or images: rendered once with Pillow, blended in numpy.

AugLy draws these through ffmpeg per call; rendering the overlay once and blending it into
frames already in memory is an order of magnitude faster. The look comes from AugLy's own
bundled assets (fonts, twemojis, screenshot templates) when AugLy is installed; without it
(the product venv's tests) a plain PIL font and drawn stand-ins are used. Pillow is imported
lazily: the numpy edits work without it.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from tools.trainset.edits import _disc, _u, augly_assets, paste, random_text, register
from tools.trainset.media import Clip, fit_size, resize


def _pil():
    from PIL import Image, ImageDraw, ImageFont

    return Image, ImageDraw, ImageFont


@lru_cache(maxsize=1)
def _fonts() -> tuple[str, ...]:
    a = augly_assets()
    return tuple(sorted(str(p) for p in (a / "fonts").glob("*.ttf"))) if a else ()


def _font(rng: np.random.Generator, px: int, prefer: str | None = None):
    _, _, ImageFont = _pil()
    fonts = _fonts()
    if prefer:
        fonts = tuple(f for f in fonts if prefer in f) or fonts
    if not fonts:
        return ImageFont.load_default(), "default"
    path = fonts[int(rng.integers(0, len(fonts)))]
    return ImageFont.truetype(path, max(8, px)), path.rsplit("/", 1)[-1]


def text_image(text: str, font, color, stroke: int = 0) -> np.ndarray:
    """uint8 [h, w, 4] RGBA of ``text`` drawn in ``color`` on transparent."""
    Image, ImageDraw, _ = _pil()
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font, stroke_width=stroke)
    img = Image.new("RGBA", (max(1, x1 - x0 + 2), max(1, y1 - y0 + 2)), (0, 0, 0, 0))
    ImageDraw.Draw(img).text(
        (-x0 + 1, -y0 + 1),
        text,
        font=font,
        fill=tuple(color) + (255,),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 255),
    )
    return np.asarray(img)


def paste_rgba(frames: np.ndarray, rgba: np.ndarray, y: int, x: int, opacity: float = 1.0):
    """Alpha-blend uint8 [h, w, 4] into every frame at (y, x); in place."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255 * opacity
    return paste(frames, rgba[..., :3], y, x, alpha)


def _fit_rgba(rgba: np.ndarray, max_h: int, max_w: int) -> np.ndarray:
    h, w = rgba.shape[:2]
    s = min(1.0, max_h / h, max_w / w)
    if s >= 1.0:
        return rgba
    Image, _, _ = _pil()
    im = Image.fromarray(rgba).resize((max(1, int(w * s)), max(1, int(h * s))))
    return np.asarray(im)


@register("overlay_text", "overlay", backend="pil")
def overlay_text(clip, rng, partner):
    h, w = clip.size
    text = random_text(rng, (1, 6))
    font, name = _font(rng, int(_u(rng, 0.05, 0.14) * h))
    color = rng.integers(0, 256, 3).tolist()
    rgba = _fit_rgba(text_image(text, font, color, stroke=int(rng.integers(0, 3))), h, w)
    y, x = (
        int(rng.integers(0, max(1, h - rgba.shape[0]))),
        int(rng.integers(0, max(1, w - rgba.shape[1]))),
    )
    out = paste_rgba(clip.frames.copy(), rgba, y, x, _u(rng, 0.6, 1.0))
    return clip.with_(frames=out), {"text": text, "font": name, "y": y, "x": x}


@lru_cache(maxsize=1)
def _emojis() -> tuple[str, ...]:
    a = augly_assets()
    return tuple(sorted(str(p) for p in (a / "twemojis").rglob("*.png"))) if a else ()


def _emoji_rgba(rng: np.random.Generator, px: int) -> tuple[np.ndarray, str]:
    Image, _, _ = _pil()
    paths = _emojis()
    if paths:
        path = paths[int(rng.integers(0, len(paths)))]
        im = Image.open(path).convert("RGBA").resize((px, px))
        return np.asarray(im), path.rsplit("/", 1)[-1]
    yy, xx = np.mgrid[0:px, 0:px] - px / 2
    rgba = np.zeros((px, px, 4), np.uint8)
    rgba[(yy**2 + xx**2) < (px / 2) ** 2] = [255, 204, 77, 255]
    return rgba, "disc"


@register("overlay_emoji", "overlay", backend="pil")
def overlay_emoji(clip, rng, partner):
    h, w = clip.size
    out = clip.frames.copy()
    placed = []
    for _ in range(int(rng.integers(1, 4))):
        px = max(8, int(_u(rng, 0.1, 0.4) * min(h, w)))
        rgba, name = _emoji_rgba(rng, px)
        y, x = int(rng.integers(0, max(1, h - px))), int(rng.integers(0, max(1, w - px)))
        paste_rgba(out, rgba, y, x, _u(rng, 0.6, 1.0))
        placed.append({"emoji": name, "size": px, "y": y, "x": x})
    return clip.with_(frames=out), {"emojis": placed}


@register("meme_format", "overlay", backend="pil")
def meme_format(clip, rng, partner):
    """A caption band (15–35 % of the height) above the clip, like AugLy's meme_format."""
    h, w = clip.size
    band = max(16, int(_u(rng, 0.15, 0.35) * h))
    text = random_text(rng, (1, 4)).upper()
    bg = rng.choice([[255, 255, 255], [0, 0, 0], rng.integers(0, 256, 3).tolist()])
    fg = [0, 0, 0] if sum(bg) > 380 else [255, 255, 255]
    font, name = _font(rng, int(band * 0.6), prefer="Raleway")
    rgba = _fit_rgba(text_image(text, font, fg), int(band * 0.9), int(w * 0.95))
    top = np.empty((band, w, 3), np.uint8)
    top[:] = np.asarray(bg, np.uint8)
    top = paste_rgba(top[None], rgba, (band - rgba.shape[0]) // 2, (w - rgba.shape[1]) // 2)[0]
    out = np.concatenate(
        [np.broadcast_to(top, (len(clip.frames), band, w, 3)), clip.frames], axis=1
    )
    return clip.with_(frames=out), {
        "text": text,
        "font": name,
        "band_px": band,
        "band_color": list(map(int, bg)),
    }


def _templates() -> list[tuple[np.ndarray, tuple[int, int, int, int], str]]:
    a = augly_assets()
    if a is None:
        canvas = np.full((736, 414, 3), 235, np.uint8)
        canvas[:60] = 40
        canvas[680:] = 200
        return [(canvas, (27, 90, 389, 600), "drawn_mobile")]
    Image, _, _ = _pil()
    d = a / "screenshot_templates"
    boxes = json.loads((d / "bboxes.json").read_text())
    return [
        (np.asarray(Image.open(d / n).convert("RGB")), tuple(b), n)
        for n, b in sorted(boxes.items())
    ]


@register("overlay_onto_screenshot", "overlay", backend="pil")
def overlay_onto_screenshot(clip, rng, partner):
    """The clip inside the content box of a phone or web screenshot template."""
    tmpl = _templates()
    img, (x0, y0, x1, y1), name = tmpl[int(rng.integers(0, len(tmpl)))]
    H, W = fit_size(*img.shape[:2])
    s = H / img.shape[0]
    canvas = resize(img[None], H, W)[0]
    bx0, by0, bx1, by1 = (int(v * s) for v in (x0, y0, x1, y1))
    bh, bw = (by1 - by0) // 2 * 2, (bx1 - bx0) // 2 * 2
    h, w = clip.size
    f = min(bh / h, bw / w)
    fh, fw = max(2, int(h * f) // 2 * 2), max(2, int(w * f) // 2 * 2)
    out = np.broadcast_to(canvas, (len(clip.frames), H, W, 3)).copy()
    y, x = by0 + (bh - fh) // 2, bx0 + (bw - fw) // 2
    out[:, y : y + fh, x : x + fw] = resize(clip.frames, fh, fw)
    return clip.with_(frames=out), {"template": name}


def text_card(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, dict]:
    """uint8 [h, w, 3]: a slide of random words on a random background (distinct per draw)."""
    bg = rng.integers(0, 256, 3)
    img = np.empty((h, w, 3), np.uint8)
    ramp = np.linspace(0.8, 1.2, h)[:, None, None]
    img[:] = np.clip(bg[None, None] * ramp, 0, 255).astype(np.uint8)
    fg = [0, 0, 0] if bg.sum() > 380 else [255, 255, 255]
    lines = [random_text(rng, (1, 4)) for _ in range(int(rng.integers(1, 5)))]
    font, name = _font(rng, int(h * 0.08))
    for k, line in enumerate(lines):
        rgba = _fit_rgba(text_image(line, font, fg), h // 6, int(w * 0.9))
        paste_rgba(img[None], rgba, int(h * (0.15 + 0.18 * k)), int(w * 0.05))
    return img, {"lines": lines, "font": name}


def clip_from_still(img: np.ndarray, seconds: float, fps: float, zoom: float = 0.0) -> Clip:
    """A silent Clip of a still uint8 [h, w, 3]; ``zoom`` > 0 slowly zooms in by that fraction
    (near-still)."""
    n = max(1, int(seconds * fps))
    h, w = img.shape[:2]
    if zoom <= 0:
        return Clip(np.broadcast_to(img, (n, h, w, 3)).copy(), fps, None)
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        z = zoom * i / max(1, n - 1)
        dy, dx = int(h * z / 2), int(w * z / 2)
        frames[i] = resize(img[None, dy : h - dy, dx : w - dx], h, w)[0]
    return Clip(frames, fps, None)


def still_look(rng: np.random.Generator) -> dict:
    """The shared setup of near-still takes: how dark, how noisy, what moves. Two takes drawn
    with one look differ only in the frame and in where the small movers walk."""
    dark = rng.random() < 0.6
    return {
        "gain": float(rng.uniform(0.25, 0.7)) if dark else 1.0,
        "gamma": float(rng.uniform(1.2, 2.2)) if dark else 1.0,
        "noise": float(rng.uniform(1.0, 4.0)),
        "zoom": float(rng.uniform(0.0, 0.05)),
        "movers": int(rng.integers(0, 13)),
        "radius": int(rng.integers(2, 7)),
        "shade": int(rng.integers(0, 60)),
        "speed": float(rng.uniform(0.3, 3.0)),
    }


def near_still_take(
    img: np.ndarray, seconds: float, fps: float, look: dict, rng: np.random.Generator
) -> Clip:
    """A silent near-still Clip of uint8 [h, w, 3] ``img`` the way a fixed camera films a
    static scene (a lab arena, a desk, a window): the frame darkened by ``look``'s gain and
    gamma, a slow zoom, sensor noise of ``look["noise"]`` grey levels per frame, and
    ``look["movers"]`` small discs of ``look["radius"]`` px on random walks."""
    frames = clip_from_still(img, seconds, fps, zoom=look["zoom"]).frames  # uint8, in place
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** look["gamma"] * look["gain"], 0, 255)
    n, h, w = frames.shape[:3]
    k = look["movers"]
    pos = rng.uniform(0, 1, (k, 2)) * [h, w]
    steps = rng.normal(0, look["speed"], (n, k, 2)).cumsum(axis=0)
    dy, dx = _disc(look["radius"])
    for i in range(n):
        f = lut[frames[i]] + rng.normal(0, look["noise"], (h, w, 1))
        if k:
            p = (pos + steps[i]) % [h, w]
            f[(p[:, :1].astype(int) + dy[None]) % h, (p[:, 1:].astype(int) + dx[None]) % w] = look[
                "shade"
            ]
        frames[i] = np.clip(f, 0, 255).astype(np.uint8)
    return Clip(frames, fps, None)


def thumb_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation in [-1, 1] of two uint8 [h, w, 3] frames as 32×32 grey."""
    ga, gb = (resize(f[None], 32, 32)[0].mean(axis=2).ravel() for f in (a, b))
    ga, gb = ga - ga.mean(), gb - gb.mean()
    return float(ga @ gb / (np.linalg.norm(ga) * np.linalg.norm(gb) + 1e-6))
