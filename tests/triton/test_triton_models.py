"""The real Triton server over gRPC: the ensemble's outputs, bad videos, and agreement with the
embedded extractor (same timestamps, descriptors within cosine 0.999, the same thumbnail
bytes)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from support.media import make_video
from vdup.errors import BadMedia, Unavailable
from vdup.triton.client import OUTPUTS, TritonExtractor

pytestmark = [pytest.mark.triton, pytest.mark.slow]  # tritonserver


def infer(
    server,
    data: bytes,
    outputs=OUTPUTS,
    model: str = "ensemble_model",
) -> dict[str, np.ndarray]:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        request = grpcclient.InferInput("VIDEO_BYTES", [1], "BYTES")
        request.set_data_from_numpy(np.array([data], dtype=np.object_))
        result = client.infer(
            model,
            [request],
            outputs=[grpcclient.InferRequestedOutput(n) for n in outputs],
            client_timeout=60,
        )
        return {n: result.as_numpy(n) for n in outputs}
    finally:
        client.close()


def test_the_ensemble_turns_video_bytes_into_every_feature(triton_server, videos):
    out = infer(triton_server, videos["orig"])  # 4 s, 320x240, 15 fps, AAC tones
    ts = out["TIMESTAMPS"]
    assert ts.dtype == np.float32 and ts.ndim == 1 and len(ts) >= 12
    assert np.all(np.diff(ts) > 0) and 0 <= ts[0] < 0.1 and ts[-1] < 4.0
    assert out["META"].tolist() == pytest.approx([4.0, 320, 240], abs=0.1)
    box = out["BOX"]
    assert box.dtype == np.int32 and box.shape == (4,)
    emb = out["EMBEDDING"]
    m = len(ts) * (2 if box[0] >= 0 else 1)
    assert emb.dtype == np.float32 and emb.shape == (m, 2, 512)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=2), 1.0, atol=1e-3)
    audio = out["AUDIO_EMBEDDING"]
    assert audio.dtype == np.float32 and audio.shape[0] == 1 and audio.shape[2] == 128
    assert 6 <= audio.shape[1] <= 8  # 1 s windows every 0.5 s over 4 s
    jpegs, times = out["THUMBNAILS"], out["THUMB_TIMES"]
    assert jpegs.dtype == np.object_ and jpegs.shape == (12,)  # Settings().thumbnails of >= 12
    assert times.dtype == np.float32 and np.isin(times, ts).all() and np.all(np.diff(times) > 0)
    assert all(j[:2] == b"\xff\xd8" and j[-2:] == b"\xff\xd9" for j in jpegs)


def test_video_decode_samples_exactly_what_the_embedded_mode_samples(triton_server, videos):
    from vdup.features.preprocess import decode_for_models
    from vdup.media.decode import MediaLimits, SamplingConfig

    out = infer(
        triton_server,
        videos["trim_crop"],
        ("IMAGES", "TIMESTAMPS", "AUDIO", "BOX"),
        model="video_decode",
    )
    ref = decode_for_models(videos["trim_crop"], SamplingConfig(), MediaLimits())
    np.testing.assert_array_equal(out["IMAGES"], ref.images)
    np.testing.assert_array_equal(out["TIMESTAMPS"], ref.timestamps)
    np.testing.assert_array_equal(out["AUDIO"], ref.audio.reshape(1, -1))
    np.testing.assert_array_equal(out["BOX"], ref.box)


def test_a_bad_video_is_a_per_request_error_and_the_server_keeps_serving(
    triton_server, triton_extractor, videos
):
    junk = np.random.default_rng(0).bytes(50_000)
    with pytest.raises(InferenceServerException) as raw:
        infer(triton_server, junk)
    assert "[vdup:bad_media]" in raw.value.message()
    with pytest.raises(BadMedia) as err:
        triton_extractor.extract(junk)
    assert type(err.value) is BadMedia and "not a readable video container" in err.value.message
    with pytest.raises(BadMedia, match="no video track"):
        triton_extractor.extract(make_video(5, duration_s=1.0, with_video=False))
    assert triton_extractor.ready()
    assert len(triton_extractor.extract(videos["orig_b"]).timestamps) >= 12


@pytest.mark.parametrize("name", ["orig", "trim_crop", "no_audio"])
def test_triton_and_embedded_paths_agree(triton_extractor, extractor, videos, name):
    a = triton_extractor.extract(videos[name])
    b = extractor.extract(videos[name])
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert (a.duration_s, a.width, a.height, a.sha256) == (
        b.duration_s,
        b.width,
        b.height,
        b.sha256,
    )
    for view in ("frames", "flipped", "region", "region_flipped", "audio"):
        x, y = getattr(a, view), getattr(b, view)
        assert x.shape == y.shape, view
        if len(x):
            assert (x * y).sum(axis=1).min() > 0.999, view
    # thumbnails: made by the same code from the same decoded frames, so the same bytes
    assert len(b.thumbnails.jpegs) == 12
    np.testing.assert_array_equal(a.thumbnails.times, b.thumbnails.times)
    assert a.thumbnails.jpegs == b.thumbnails.jpegs


def test_an_unreachable_or_slow_triton_is_unavailable_not_a_decision(
    triton_server, triton_extractor, videos
):
    with socket_closed_port() as port:
        down = TritonExtractor(f"127.0.0.1:{port}", timeout_s=5)
        assert not down.ready()
        with pytest.raises(Unavailable, match="unreachable") as err:
            down.extract(videos["orig"])
        assert err.value.retry_after_s == 5
        down.close()
    slow = TritonExtractor(triton_server.grpc_url, timeout_s=0.001)
    with pytest.raises(Unavailable, match="did not answer within"):
        slow.extract(videos["orig"])
    slow.close(wait_s=30)  # the call is left to finish, not cancelled (see TritonExtractor)
    assert len(triton_extractor.extract(videos["orig"]).timestamps) >= 12  # still serving
    missing = TritonExtractor(triton_server.grpc_url, model="no_such_model")
    assert not missing.ready()
    with pytest.raises(Unavailable):
        missing.extract(videos["orig"])
    missing.close()


class socket_closed_port:
    """A loopback port that nothing listens on."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()
