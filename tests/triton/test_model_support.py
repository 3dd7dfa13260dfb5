"""The helpers shared by the python-backend models and the client, without a server."""

from __future__ import annotations

import json

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
