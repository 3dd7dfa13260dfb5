"""The helpers shared by the python-backend models and the client, without a server."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from support import REPO
from vdup.errors import BadMedia, MediaTooLarge
from vdup.triton.model_support import error_text, model_settings, parse_error
from vdup.triton.repository import missing

SOURCE = REPO / "model_repository"


def args(**params: str) -> dict[str, str]:
    config = {"parameters": {k: {"string_value": v} for k, v in params.items()}}
    return {"model_config": json.dumps(config), "model_instance_kind": "CPU"}


def test_domain_errors_survive_the_trip_through_an_ensemble_message():
    text = "in ensemble 'ensemble_model', " + error_text(BadMedia("no video track in the file"))
    err = parse_error(text)
    assert type(err) is BadMedia and err.message == "no video track in the file"
    assert type(parse_error(error_text(MediaTooLarge("too long")))) is MediaTooLarge
    assert parse_error("Socket closed") is None
    assert parse_error("[vdup:internal] boom") is None


def test_model_settings_parameters_override_the_environment(monkeypatch):
    monkeypatch.setenv("VDUP_MAX_FRAMES", "40")
    monkeypatch.setenv("VDUP_FRAME_SIZE", "192")
    s = model_settings(args(frame_size="", max_frames="50", chunk="64"))
    assert s.sampling().max_frames == 50 and s.sampling().frame_size == 192
    assert model_settings(args()).sampling().max_frames == 40
    with pytest.raises(ValueError, match="unknown parameters"):
        model_settings(args(frame_sise="224"))


def test_defaults_are_the_embedded_defaults(monkeypatch):
    from vdup.media.decode import MediaLimits, SamplingConfig

    for name in ("VDUP_FRAME_SIZE", "VDUP_MAX_FRAMES", "VDUP_MIN_FRAMES", "VDUP_MAX_GAP_S"):
        monkeypatch.delenv(name, raising=False)
    s = model_settings(args())
    assert s.sampling() == SamplingConfig() and s.limits() == MediaLimits()


def test_the_committed_repository_has_every_config_and_no_model_file_in_git():
    lacking = missing(SOURCE)
    assert all(p.suffix == ".onnx" for p in lacking), lacking


def test_the_gpu_config_differs_from_the_cpu_one_only_in_device_and_chunk():
    import difflib

    cpu = (SOURCE / "video_embedding" / "config.pbtxt").read_text().splitlines()
    gpu = (SOURCE / "video_embedding" / "configs" / "gpu.pbtxt").read_text().splitlines()
    changed = [
        line[1:]
        for line in difflib.unified_diff(cpu, gpu, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    body = [line for line in changed if not line.startswith("#")]
    assert sorted(body) == sorted(
        [
            '  { key: "chunk" value: { string_value: "64" } }',
            '  { key: "chunk" value: { string_value: "256" } }',
            "    kind: KIND_CPU",
            "    kind: KIND_GPU",
        ]
    )


def test_the_thumbnails_parameter_is_the_settings_field(monkeypatch):
    monkeypatch.delenv("VDUP_THUMBNAILS", raising=False)
    assert model_settings(args(thumbnails="")).thumbnails == 12
    assert model_settings(args(thumbnails="0")).thumbnails == 0
    with pytest.raises(ValueError, match="thumbnails"):
        model_settings(args(thumbnails="33"))


def _outputs(config: str) -> list[str]:
    text = config.split("output [", 1)[1].split("\n]", 1)[0]
    return re.findall(r'name: "([A-Z_]+)"', text)


def test_the_client_asks_for_what_the_ensemble_gives_and_video_decode_makes():
    from vdup.triton.client import OUTPUTS

    ensemble = (SOURCE / "ensemble_model" / "config.pbtxt").read_text()
    decode = (SOURCE / "video_decode" / "config.pbtxt").read_text()
    assert sorted(_outputs(ensemble)) == sorted(OUTPUTS)
    mapped = re.findall(r'output_map \{ key: "([A-Z_]+)" value: "([A-Z_]+)" \}', ensemble)
    assert sorted(k for k, v in mapped if k == v) == sorted(OUTPUTS)
    assert set(OUTPUTS) <= set(_outputs(decode))
    assert 'key: "thumbnails"' in decode


def test_features_from_outputs_carries_the_thumbnails():
    from vdup.triton.client import features_from_outputs

    n = 3
    emb = np.zeros((n, 2, 512), np.float32)
    emb[:, :, 0] = 1
    outputs = {
        "TIMESTAMPS": np.array([0.0, 1.0, 2.0], np.float32),
        "BOX": np.full(4, -1, np.int32),
        "META": np.array([3.0, 320, 240], np.float32),
        "EMBEDDING": emb,
        "AUDIO_EMBEDDING": np.zeros((1, 0, 128), np.float32),
        "THUMBNAILS": np.array([b"\xff\xd8a\xff\xd9", b"\xff\xd8b\xff\xd9"], dtype=np.object_),
        "THUMB_TIMES": np.array([0.0, 2.0], np.float32),
    }
    features = features_from_outputs(outputs, "0" * 64)
    assert features.thumbnails.jpegs == (b"\xff\xd8a\xff\xd9", b"\xff\xd8b\xff\xd9")
    assert features.thumbnails.times.tolist() == [0.0, 2.0]
    outputs["THUMBNAILS"] = np.zeros(0, np.object_)
    outputs["THUMB_TIMES"] = np.zeros(0, np.float32)
    assert features_from_outputs(outputs, "0" * 64).thumbnails.jpegs == ()
