"""Triton python model ``video_decode``: video bytes -> sampled frames' SSCD descriptors, their
timestamps, the content box, the audio track, its descriptors, the video's size and a few
thumbnails (JPEG) of its frames for the review page.

It runs the embedded mode's own code, ``decode_and_describe``: frames go to the
``video_embedding`` model (a BLS call, so dynamic batching and the GPU apply there) in batches
while decoding continues, exactly as the embedded extractor overlaps decode and onnxruntime; the
soundtrack, decoded in a pass of its own beside the frames, goes to ``audio_embedding`` (BLS
again) while the content box is sought, as in the embedded extractor, instead of waiting for
this model to finish as a second ensemble step would.
A video that cannot be decoded is answered per request with a ``TritonError`` carrying the
domain error (``[vdup:bad_media] ...``); the model keeps serving.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import triton_python_backend_utils as pb_utils

from vdup.errors import VdupError
from vdup.features.extractor import decode_and_describe, limit_blas_threads
from vdup.triton.model_support import error_text, model_parameters, model_settings

#: Every output; a request names those it wants (the ensemble: all but IMAGES and AUDIO).
OUTPUTS = (
    "EMBEDDING",
    "TIMESTAMPS",
    "AUDIO",
    "BOX",
    "META",
    "IMAGES",
    "AUDIO_EMBEDDING",
    "THUMBNAILS",
    "THUMB_TIMES",
)


class TritonPythonModel:
    def initialize(self, args):
        settings = model_settings(args)
        limit_blas_threads(settings.blas_threads)
        self.sampling = settings.sampling()
        self.limits = settings.limits()
        self.thumbnails = settings.thumbnails
        params = model_parameters(args)
        self.embedding_model = params.get("embedding_model", "video_embedding")
        self.audio_model = params.get("audio_model", "audio_embedding")
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bls")
        self.audio_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audio")
        pb_utils.Logger.log_info(
            f"video_decode: {self.sampling} {self.limits} thumbnails={self.thumbnails}"
        )

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def finalize(self):
        self.pool.shutdown(wait=True)
        self.audio_pool.shutdown(wait=True)

    def _one(self, request):
        data = pb_utils.get_input_tensor_by_name(request, "VIDEO_BYTES").as_numpy().reshape(-1)
        wanted = set(request.requested_output_names()) or set(OUTPUTS)
        try:
            if data.size != 1 or not isinstance(data[0], bytes):
                raise TypeError("VIDEO_BYTES must hold exactly one byte string")
            inputs, both, audio_embedding = decode_and_describe(
                data[0],
                self.sampling,
                self.limits,
                self._embed,
                self.pool,
                describe_audio=self._embed_audio if "AUDIO_EMBEDDING" in wanted else None,
                audio_pool=self.audio_pool,
                thumbnails=self.thumbnails if wanted & {"THUMBNAILS", "THUMB_TIMES"} else 0,
            )
        except VdupError as exc:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(error_text(exc), pb_utils.TritonError.INVALID_ARG)
            )
        except Exception as exc:  # noqa: BLE001 - one bad request must never take the model down
            pb_utils.Logger.log_error(f"video_decode: {type(exc).__name__}: {exc}")
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"video_decode failed: {type(exc).__name__}: {exc}")
            )
        m = inputs.images.shape[0]
        outputs = {
            "EMBEDDING": np.ascontiguousarray(np.stack([both[:m], both[m:]], axis=1)),
            "TIMESTAMPS": inputs.timestamps.astype(np.float32, copy=False),
            "AUDIO": inputs.audio.reshape(1, -1).astype(np.float32, copy=False),
            "BOX": inputs.box.astype(np.int32, copy=False),
            "META": np.array([inputs.duration_s, inputs.width, inputs.height], np.float32),
            "IMAGES": inputs.images,
            "AUDIO_EMBEDDING": audio_embedding,
            "THUMBNAILS": np.array(inputs.thumbnails.jpegs, dtype=np.object_).reshape(-1),
            "THUMB_TIMES": inputs.thumbnails.times.astype(np.float32, copy=False),
        }
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(k, v) for k, v in outputs.items() if k in wanted and v is not None
            ]
        )

    def _embed_audio(self, audio):
        """float32 [t] mono 16 kHz -> float32 [1, w, 128] via audio_embedding."""
        return self._call(
            self.audio_model, "AUDIO", audio.reshape(1, -1).astype(np.float32), "AUDIO_EMBEDDING"
        )

    def _embed(self, images):
        """uint8 [b, S, S, 3] -> float32 [b, 512] via video_embedding."""
        return self._call(self.embedding_model, "IMAGES", np.ascontiguousarray(images), "EMBEDDING")

    @staticmethod
    def _call(model, input_name, array, output_name):
        """One BLS request to ``model``: ``array`` in as ``input_name``, ``output_name`` out."""
        response = pb_utils.InferenceRequest(
            model_name=model,
            requested_output_names=[output_name],
            inputs=[pb_utils.Tensor(input_name, array)],
        ).exec()
        if response.has_error():
            raise RuntimeError(f"{model}: {response.error().message()}")
        return pb_utils.get_output_tensor_by_name(response, output_name).as_numpy()
