"""Triton python model ``audio_embedding``: mono audio -> per-window audio descriptors.

Runs ``vdup.features.extractor.AudioEmbedder``, the embedded mode's code, on the graph written
by ``vdup models install``. Requests of different lengths are run one by one (the graph's
windows depend on each signal's own length).
"""

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from vdup.features.extractor import AudioEmbedder
from vdup.triton.model_support import model_settings, onnx_providers, onnx_spin


class TritonPythonModel:
    def initialize(self, args):
        path = Path(args["model_repository"]) / args["model_version"] / "audio.onnx"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run 'vdup models install'")
        self.embedder = AudioEmbedder(
            path,
            threads=model_settings(args).onnx_threads,
            providers=onnx_providers(args),
            spin=onnx_spin(args),
        )

    def execute(self, requests):
        responses = []
        for request in requests:
            audio = pb_utils.get_input_tensor_by_name(request, "AUDIO").as_numpy()
            out = self.embedder(audio.reshape(-1))[None]  # [1, w, 128]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("AUDIO_EMBEDDING", out.astype(np.float32))]
                )
            )
        return responses
