"""What the python-backend ``model.py`` files in ``model_repository/`` share with each other and
with the client, kept importable without Triton so it can be tested and read on its own.

Why it exists: the models must build their settings exactly as the embedded mode does (same
``Settings`` fields, same defaults, same ``VDUP_*`` variables) and the client must recognise a
bad-media error coming back through the ensemble. Both sides use the one format defined here.

Precedence of a model's settings: a non-empty ``parameters`` entry of its ``config.pbtxt``, whose
key is a ``vdup.settings.Settings`` field name (``frame_size``, ``max_frames``, ``onnx_threads``,
...), then the ``VDUP_*`` environment of the Triton process, then the field's default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from vdup.errors import BadMedia, MediaTooLarge, VdupError
from vdup.settings import Settings

#: Domain errors that a model sends back per request, by their ``code``.
REQUEST_ERRORS: dict[str, type[VdupError]] = {
    BadMedia.code: BadMedia,
    MediaTooLarge.code: MediaTooLarge,
}
#: Parameters that configure a model itself, not ``Settings``: ``chunk`` = images per
#: onnxruntime run in ``video_embedding``; ``embedding_model`` = the model ``video_decode`` calls;
#: ``onnx_spin`` = whether idle onnxruntime threads busy-wait (see ``onnx_spin``).
MODEL_ONLY_PARAMETERS = frozenset({"audio_model", "chunk", "embedding_model", "onnx_spin"})
_ERROR = re.compile(r"\[vdup:(?P<code>[a-z_]+)\] (?P<message>.*)", re.DOTALL)


def model_parameters(args: Mapping[str, str]) -> dict[str, str]:
    """The non-empty ``parameters`` of the model's config, as strings."""
    config = json.loads(args["model_config"])
    params = config.get("parameters") or {}
    out = {}
    for key, value in params.items():
        text = value.get("string_value", "") if isinstance(value, dict) else str(value)
        if text.strip():
            out[key] = text.strip()
    return out


def model_settings(args: Mapping[str, str]) -> Settings:
    """``Settings`` from the environment, overridden by the config's parameters that name a field.

    An unknown parameter key or a bad value raises (the model then fails to load, with pydantic's
    message naming the field).
    """
    params = model_parameters(args)
    fields = Settings.model_fields
    unknown = sorted(k for k in params if k not in fields and k not in MODEL_ONLY_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown parameters in config.pbtxt: {', '.join(unknown)}")
    # pydantic parses each string into its field's type (and names the field when it cannot)
    return Settings(**{k: v for k, v in params.items() if k in fields})  # type: ignore[arg-type]


def onnx_spin(args: Mapping[str, str]) -> bool:
    """The ``onnx_spin`` parameter (default false). Triton runs each model in its own process on
    shared cores; onnxruntime threads that busy-wait between runs take CPU from the decoder in
    the next process (measured: docs/triton-notes.md)."""
    value = model_parameters(args).get("onnx_spin", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"onnx_spin must be true or false, not {value!r}")
    return value in ("true", "1")


def onnx_providers(args: Mapping[str, str]) -> list:
    """onnxruntime execution providers for this model instance: CUDA on the instance's device
    for ``KIND_GPU``, else CPU. Raises when a GPU instance meets an onnxruntime without CUDA."""
    import onnxruntime as ort

    if args.get("model_instance_kind", "CPU") != "GPU":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError(
            "instance_group is KIND_GPU but this onnxruntime has no CUDAExecutionProvider "
            "(install onnxruntime-gpu in the Triton image, or use KIND_CPU)"
        )
    device = int(args.get("model_instance_device_id", "0") or 0)
    return [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]


def error_text(exc: VdupError) -> str:
    """How a model reports a domain error: ``[vdup:<code>] <message>``."""
    return f"[vdup:{exc.code}] {exc.message}"


def parse_error(text: str) -> VdupError | None:
    """The domain error inside a Triton error message (the ensemble may prefix its own words),
    or None when the message carries none."""
    match = _ERROR.search(text or "")
    if match is None or match["code"] not in REQUEST_ERRORS:
        return None
    return REQUEST_ERRORS[match["code"]](match["message"].strip())
