"""The content-rectangle detector on generated frames: overlays, pads and plain video."""

import numpy as np
import pytest

from vdup.media.region import content_box

S = 224


def texture(seed: int, h: int, w: int, frame: int, speed: int = 3) -> np.ndarray:
    """A smooth random picture (like natural footage: gentle gradients, few sharp edges) that
    pans by ``speed`` px per frame: float [h, w] in 0..255."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=((h + 120) // 8 + 2, (w + 120) // 8 + 2))
    ys, xs = np.arange(h + 120) / 8, np.arange(w + 120) / 8
    y0, x0 = ys.astype(int), xs.astype(int)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    big = (
        (1 - wy) * (1 - wx) * coarse[y0][:, x0]
        + wy * (1 - wx) * coarse[y0 + 1][:, x0]
        + (1 - wy) * wx * coarse[y0][:, x0 + 1]
        + wy * wx * coarse[y0 + 1][:, x0 + 1]
    )
    y = (frame * speed) % 100
    return big[y : y + h, y : y + w]


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def near(box, expected, tol=8):
    return box is not None and all(abs(a - b) <= tol for a, b in zip(box, expected))


def test_a_video_pasted_into_a_still_screenshot_is_found():
    screen = np.full((S, S), 235.0)
    screen[10:40, 10:214] = 200  # a header bar and cards: still, straight-edged clutter
    screen[50:100, 160:214] = 120
    frames = []
    for i in range(12):
        f = screen.copy()
        f[110:200, 30:150] = texture(1, 90, 120, i)
        frames.append(rgb(f))
    assert near(content_box(np.stack(frames)), (110, 30, 200, 150))


def test_a_video_over_another_moving_video_is_found():
    frames = []
    for i in range(12):
        f = texture(2, S, S, i, speed=1) * 0.5  # a darker, calmer background clip...
        f[40:170, 60:190] = texture(3, 130, 130, i, speed=6) * 0.4 + 150  # ...under the copy
        frames.append(rgb(f))
    assert near(content_box(np.stack(frames)), (40, 60, 170, 190))


def test_a_9_16_reframe_over_a_blurred_copy_finds_the_band():
    frames = []
    for i in range(12):
        f = texture(4, S, S, i)
        blur = f.mean() + 0.15 * (f - f.mean())  # the blurred, enlarged copy: little detail
        blur[72:152] = texture(5, 80, S, i)  # the content band
        frames.append(rgb(blur))
    box = content_box(np.stack(frames))
    assert box is not None and abs(box[0] - 72) <= 8 and abs(box[2] - 152) <= 8
    assert box[1] <= 8 and box[3] >= S - 8


def test_plain_video_has_no_box():
    frames = np.stack([rgb(texture(5, S, S, i)) for i in range(12)])
    assert content_box(frames) is None


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_frames_give_no_box(n):
    assert content_box(np.zeros((n, S, S, 3), np.uint8)) is None


def test_a_screenshot_over_a_moving_video_gives_the_clip_not_its_blank_media_slot():
    """The copy sits in the right part of a screenshot's media slot, the screenshot over
    another moving clip (AugLy overlay onto screenshot, then onto a background video). Life
    is spread over the whole frame, so the box is chosen on its geometry: the cleanest closed
    rectangle (the clip's own edges), not the one with the longest border (the media slot's,
    whose top edge stops where the blank part begins)."""
    frames = []
    for i in range(12):
        f = texture(6, S, S, i, speed=2)  # the background clip
        f[20:210, 20:200] = 240.0  # the screenshot: white page...
        f[30:50, 30:190] = 180.0  # ...a header...
        f[120:190, 30:40] = 200.0  # ...the slot's blank left part, fenced by a thin rule
        f[120:190, 70:180] = texture(7, 70, 110, i, speed=5) * 0.6 + 40  # ...and the copy
        frames.append(rgb(f))
    assert near(content_box(np.stack(frames)), (120, 70, 190, 180))
