"""Triton python model ``video_decode``: video bytes -> the descriptor models' inputs.

It imports the embedded mode's code unchanged (``decode_for_models``), so both paths sample the
same frames and audio. A video that cannot be decoded is answered per request with a
``TritonError`` carrying the domain error (``[vdup:bad_media] ...``); the model keeps serving.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from vdup.errors import VdupError
from vdup.features.preprocess import decode_for_models
from vdup.triton.model_support import error_text, model_settings


class TritonPythonModel:
    def initialize(self, args):
        settings = model_settings(args)
        self.sampling = settings.sampling()
        self.limits = settings.limits()
        self.logger = pb_utils.Logger
        self.logger.log_info(f"video_decode: {self.sampling} {self.limits}")

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        data = pb_utils.get_input_tensor_by_name(request, "VIDEO_BYTES").as_numpy().reshape(-1)
        try:
            if data.size != 1 or not isinstance(data[0], bytes):
                raise TypeError("VIDEO_BYTES must hold exactly one byte string")
            inputs = decode_for_models(data[0], self.sampling, self.limits)
        except VdupError as exc:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(error_text(exc), pb_utils.TritonError.INVALID_ARG)
            )
        except Exception as exc:  # one bad request must never take the model down
            self.logger.log_error(f"video_decode: unexpected {type(exc).__name__}: {exc}")
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"video_decode failed: {type(exc).__name__}")
            )
        meta = np.array([inputs.duration_s, inputs.width, inputs.height], np.float32)
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("IMAGES", inputs.images),
            pb_utils.Tensor("TIMESTAMPS", inputs.timestamps.astype(np.float32, copy=False)),
            pb_utils.Tensor("AUDIO", inputs.audio.reshape(1, -1).astype(np.float32, copy=False)),
            pb_utils.Tensor("BOX", inputs.box.astype(np.int32, copy=False)),
            pb_utils.Tensor("META", meta),
        ])
