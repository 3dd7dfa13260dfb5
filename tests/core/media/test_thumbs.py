"""Thumbnails: which frames get one, and that each is a browser-ready JPEG of the right shape,
orientation and colour, made from the frames the decoder already produced."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from support.media import make_video, scene_frame
from vdup.features.types import Thumbnails
from vdup.media.decode import decode_video
from vdup.media.thumbs import (
    DEFAULT_COUNT,
    THUMB_LONG_SIDE,
    encode_jpeg,
    make_thumbnails,
    thumbnail_rows,
    thumbnail_size,
)


def decode_jpeg(data: bytes) -> np.ndarray:
    """uint8 [h, w, 3] RGB of one JPEG file, decoded by FFmpeg as a browser would."""
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def markers(data: bytes) -> list[int]:
    """The JPEG markers up to the start of the scan (SOS)."""
    assert data[:2] == b"\xff\xd8"
    out, i = [], 2
    while True:
        assert data[i] == 0xFF, i
        marker = data[i + 1]
        out.append(marker)
        if marker == 0xDA:
            return out
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")


def rotated_clip(degrees: int, top: tuple, bottom: tuple, width=320, height=240) -> bytes:
    """A 2 s clip whose coded frames are ``top`` over ``bottom`` (RGB), shown rotated by
    ``degrees`` counter-clockwise (the display matrix phones write)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(degrees)
        img = np.empty((height, width, 3), np.uint8)
        img[: height // 2], img[height // 2 :] = top, bottom
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 15)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


def test_rows_spread_evenly_from_the_first_frame_to_the_last():
    rows = thumbnail_rows(96, 12)
    assert rows.dtype == np.int64 and rows[0] == 0 and rows[-1] == 95 and len(rows) == 12
    gaps = np.diff(rows)
    assert gaps.min() >= 8 and gaps.max() <= 9


def test_rows_are_unique_ascending_and_as_many_as_asked_or_possible():
    for n in range(0, 200):
        for count in range(0, 40):
            rows = thumbnail_rows(n, count)
            k = min(n, count)
            assert rows.dtype == np.int64 and rows.shape == (k,), (n, count)
            assert np.all(np.diff(rows) > 0) and np.all((0 <= rows) & (rows < max(n, 1)))
            if k >= 2:
                assert (rows[0], rows[-1]) == (0, n - 1), (n, count)
            if count >= n:
                assert rows.tolist() == list(range(n))


def test_one_row_is_the_middle_frame_and_none_is_empty():
    assert thumbnail_rows(9, 1).tolist() == [4]
    assert thumbnail_rows(1, 1).tolist() == [0]
    assert thumbnail_rows(0, 12).shape == thumbnail_rows(12, 0).shape == (0,)
    assert thumbnail_rows(5, -1).shape == (0,)


@pytest.mark.parametrize(
    "size, expected",
    [
        ((720, 1280), (90, 160)),
        ((1280, 720), (160, 90)),
        ((1080, 1920), (90, 160)),
        ((320, 240), (160, 120)),
        ((854, 480), (160, 90)),
        ((640, 640), (160, 160)),
        ((4000, 10), (160, 2)),
        ((0, 0), (160, 160)),
    ],
)
def test_thumbnail_size_keeps_the_aspect_with_even_sides(size, expected):
    assert thumbnail_size(*size) == expected
    assert all(side % 2 == 0 for side in thumbnail_size(*size, long_side=101))


@pytest.mark.parametrize(
    "width, height, expected",
    [(720, 1280, (160, 90)), (1280, 720, (90, 160)), (320, 240, (120, 160))],
)
def test_encode_jpeg_gives_a_baseline_jpeg_of_the_videos_shape(width, height, expected):
    rgb = scene_frame(3, 1.0, 224, 224)  # the square frame the decoder hands on
    data = encode_jpeg(rgb, width, height)
    assert data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")
    found = markers(data)
    assert 0xC0 in found  # SOF0: baseline, Huffman, 8 bit: what every browser decodes
    assert not {0xC1, 0xC2, 0xC3} & set(found)  # not extended, progressive or lossless
    assert 500 < len(data) < 8_000
    assert decode_jpeg(data).shape[:2] == expected
    assert max(expected) == THUMB_LONG_SIDE


def test_a_flat_colour_stays_that_colour():
    colour = np.array([200, 40, 70], np.uint8)
    rgb = np.broadcast_to(colour, (224, 224, 3)).copy()
    out = decode_jpeg(encode_jpeg(rgb, 1280, 720)).astype(float)
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), colour, atol=6)
    assert out.std(axis=(0, 1)).max() < 3


def test_the_picture_is_the_frame_scaled_not_cropped_or_turned():
    rgb = np.zeros((224, 224, 3), np.uint8)
    rgb[:112, :, 0] = 255  # red above, green below, a blue stripe on the right
    rgb[112:, :, 1] = 255
    rgb[:, 196:, 2] = 255
    out = decode_jpeg(encode_jpeg(rgb, 720, 1280)).astype(int)  # 90 x 160
    assert out[20, 40, 0] > 200 and out[20, 40, 1] < 60  # top: red
    assert out[140, 40, 1] > 200 and out[140, 40, 0] < 60  # bottom: green
    assert out[80, 85, 2] > 200 and out[80, 40, 2] < 60  # right edge: blue


def test_quality_trades_bytes_for_fidelity_and_bad_input_is_refused():
    rgb = scene_frame(5, 0.5, 224, 224)
    assert len(encode_jpeg(rgb, 320, 240, quality=2)) > len(encode_jpeg(rgb, 320, 240, quality=12))
    with pytest.raises(ValueError):
        encode_jpeg(rgb, 320, 240, quality=1)
    with pytest.raises(ValueError):
        encode_jpeg(rgb.astype(np.float32), 320, 240)


def test_make_thumbnails_picks_the_rows_at_their_timestamps():
    video = decode_video(make_video(1, duration_s=6.0, width=320, height=240))
    n = len(video.timestamps)
    thumbs = make_thumbnails(video.frames, video.timestamps, video.width, video.height, 5)
    rows = thumbnail_rows(n, 5)
    assert isinstance(thumbs, Thumbnails) and len(thumbs.jpegs) == 5
    assert thumbs.times.dtype == np.float32
    np.testing.assert_array_equal(thumbs.times, video.timestamps[rows])
    for data, row in zip(thumbs.jpegs, rows):
        assert data == encode_jpeg(video.frames[row], 320, 240)  # the same bytes every time
        assert decode_jpeg(data).shape == (120, 160, 3)
    assert thumbs.nearest(float(video.timestamps[rows[2]]) + 0.01) == 2
    every = make_thumbnails(video.frames, video.timestamps, 320, 240, n + 10)
    assert len(every.jpegs) == n


def test_count_zero_is_empty():
    video = decode_video(make_video(1, duration_s=2.0))
    thumbs = make_thumbnails(video.frames, video.timestamps, video.width, video.height, 0)
    assert thumbs.jpegs == () and thumbs.times.shape == (0,) and thumbs.nearest(1.0) == -1
    assert DEFAULT_COUNT == 12


@pytest.mark.parametrize("degrees", [90, -90])
def test_a_rotated_clip_gets_an_upright_thumbnail(degrees):
    # coded red over blue, turned a quarter: red on one side, blue on the other
    video = decode_video(rotated_clip(degrees, (255, 0, 0), (0, 0, 255)))
    thumbs = make_thumbnails(video.frames, video.timestamps, video.width, video.height, 1)
    out = decode_jpeg(thumbs.jpegs[0]).astype(int)
    h, w, _ = out.shape
    left, right = out[h // 2, w // 8], out[h // 2, w - 1 - w // 8]
    red_left = degrees == 90  # counter-clockwise: the top goes left
    red, blue = (left, right) if red_left else (right, left)
    assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60


def test_a_rotated_clip_gets_a_thumbnail_of_its_display_aspect():
    video = decode_video(rotated_clip(90, (255, 0, 0), (0, 0, 255)))  # coded 320x240
    thumbs = make_thumbnails(video.frames, video.timestamps, video.width, video.height, 1)
    assert decode_jpeg(thumbs.jpegs[0]).shape[:2] == (160, 120)  # shown 240x320: portrait
