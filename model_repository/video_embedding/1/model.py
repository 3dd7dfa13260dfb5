"""Triton python model ``video_embedding``: images -> their SSCD descriptors.

Runs ``vdup.features.extractor.ImageEmbedder``, exactly what the embedded extractor runs, over
every request that the dynamic batcher grouped into one call. Which images are mirrored is
``video_decode``'s choice (``decode_and_describe``): it sends mirrored images like any others.
"""

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from vdup.features.extractor import ImageEmbedder
from vdup.triton.model_support import (
    model_parameters,
    model_settings,
    onnx_providers,
    onnx_spin,
)


class TritonPythonModel:
    def initialize(self, args):
        path = Path(args["model_repository"]) / args["model_version"] / "sscd.onnx"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run 'vdup models install'")
        chunk = int(model_parameters(args).get("chunk", "64"))
        self.embedder = ImageEmbedder(
            path,
            threads=model_settings(args).onnx_threads,
            batch=chunk,
            providers=onnx_providers(args),
            spin=onnx_spin(args),
        )
        pb_utils.Logger.log_info(
            f"video_embedding: {path} on {self.embedder.session.get_providers()[0]}"
        )

    def execute(self, requests):
        images = [pb_utils.get_input_tensor_by_name(r, "IMAGES").as_numpy() for r in requests]
        batch = images[0] if len(images) == 1 else np.concatenate(images)
        described = self.embedder(batch)  # [m, 512]
        responses, start = [], 0
        for part in images:
            out = np.ascontiguousarray(described[start : start + len(part)])
            start += len(part)
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("EMBEDDING", out)])
            )
        return responses
