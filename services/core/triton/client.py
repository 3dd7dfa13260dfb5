"""The Triton extractor: a video's bytes go to Triton's ``ensemble_model`` over gRPC in one call,
and the outputs come back as the same ``VideoFeatures`` the embedded extractor makes.

Why it is a thin client: decode, pre-processing and both descriptors run inside Triton with the
embedded mode's own code; here the outputs only go through ``vdup.features.preprocess.assemble``,
the function the embedded extractor ends with, so both paths agree by construction.

Failure policy (the API maps these to HTTP at its edge):

- a bad video, reported by ``video_decode`` per request as ``[vdup:bad_media] ...``, raises
  ``BadMedia`` (or ``MediaTooLarge``) with the decoder's message: the client's fault, 422/413;
- Triton unreachable, not ready, too slow, or failing in any other way raises ``Unavailable``
  (503 with ``Retry-After``). No features means no decision.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from vdup.errors import Unavailable, VdupError
from vdup.features.preprocess import ModelInputs, assemble, sha256_of
from vdup.features.types import VideoFeatures
from vdup.triton.model_support import parse_error

OUTPUTS = ("TIMESTAMPS", "BOX", "META", "EMBEDDING", "AUDIO_EMBEDDING")
RETRY_AFTER_S = 5


class TritonExtractor:
    """``Extractor`` over a Triton server's gRPC endpoint ``url`` (``host:port``).

    timeout_s: deadline of one inference call, s. Thread-safe: one gRPC channel is shared by
    concurrent checks.
    """

    def __init__(self, url: str, model: str = "ensemble_model", timeout_s: float = 60.0) -> None:
        import tritonclient.grpc as grpcclient

        self.url = url
        self.model = model
        self.timeout_s = timeout_s
        self._grpc = grpcclient
        self._client = grpcclient.InferenceServerClient(url)
        self._outputs = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]

    def ready(self) -> bool:
        """True when the server and ``model`` answer ready within 2 s."""
        try:
            return bool(self._client.is_server_ready(client_timeout=2)
                        and self._client.is_model_ready(self.model, client_timeout=2))
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    def extract(self, data: bytes) -> VideoFeatures:
        """Features of the video file ``data``; raises BadMedia, MediaTooLarge or Unavailable."""
        from tritonclient.utils import InferenceServerException

        from vdup.metrics import BACKEND_FAILURES, BACKEND_REQUEST_DURATION

        request = self._grpc.InferInput("VIDEO_BYTES", [1], "BYTES")
        request.set_data_from_numpy(np.array([data], dtype=np.object_))
        t0 = time.perf_counter()
        try:
            with _client_span(self.model) as headers:
                result = self._client.infer(
                    self.model, [request], outputs=self._outputs,
                    client_timeout=self.timeout_s, headers=headers or None,
                )
        except InferenceServerException as exc:
            error = self._error(exc)
            if isinstance(error, Unavailable):
                BACKEND_FAILURES.labels("triton", "infer").inc()
            raise error from None
        finally:
            BACKEND_REQUEST_DURATION.labels("triton", "infer").observe(time.perf_counter() - t0)
        try:
            return features_from_outputs({name: result.as_numpy(name) for name in OUTPUTS},
                                         sha256_of(data))
        except (AssertionError, ValueError, TypeError, AttributeError, IndexError) as exc:
            BACKEND_FAILURES.labels("triton", "infer").inc()
            raise Unavailable(
                f"feature extraction is unavailable: model {self.model!r} at {self.url} answered "
                f"outputs this client does not understand ({type(exc).__name__})",
                retry_after_s=RETRY_AFTER_S,
            ) from None

    def close(self) -> None:
        self._client.close()

    def _error(self, exc) -> VdupError:
        message = exc.message() or str(exc)
        domain = parse_error(message)
        if domain is not None:
            return domain
        status = (exc.status() or "").rsplit(".", 1)[-1]
        if status == "DEADLINE_EXCEEDED":
            reason = f"Triton at {self.url} did not answer within {self.timeout_s:g} s"
        elif status == "UNAVAILABLE":
            reason = f"Triton at {self.url} is unreachable"
        else:
            reason = f"Triton at {self.url} failed: {message.strip()[:200]}"
        return Unavailable(f"feature extraction is unavailable: {reason}",
                           retry_after_s=RETRY_AFTER_S)


def features_from_outputs(outputs: dict[str, np.ndarray], sha256: str) -> VideoFeatures:
    """``ensemble_model`` outputs -> ``VideoFeatures`` via ``assemble``.

    EMBEDDING float32 [m, 2, 512] (per image: plain, mirrored) becomes the [2m, 512] that
    ``assemble`` expects for ``with_flips(images)``. The images never leave Triton, so the
    ``ModelInputs`` carries an empty [m, 0, 0, 3] stand-in: ``assemble`` only counts them.
    """
    pairs = outputs["EMBEDDING"]
    m = pairs.shape[0]
    duration_s, width, height = (float(v) for v in outputs["META"].reshape(3))
    inputs = ModelInputs(
        images=np.empty((m, 0, 0, 3), np.uint8),
        timestamps=outputs["TIMESTAMPS"].astype(np.float32, copy=False),
        audio=np.zeros(0, np.float32),
        box=outputs["BOX"].astype(np.int32, copy=False),
        duration_s=duration_s,
        width=int(round(width)),
        height=int(round(height)),
    )
    embeddings = np.concatenate([pairs[:, 0], pairs[:, 1]])
    return assemble(inputs, embeddings, outputs["AUDIO_EMBEDDING"], sha256)


@contextmanager
def _client_span(model: str) -> Iterator[dict[str, str]]:
    """A client span around one call; yields the W3C trace headers to send with it (empty when
    no trace is active)."""
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer("vdup.triton")
    with tracer.start_as_current_span(f"triton infer {model}", kind=trace.SpanKind.CLIENT) as span:
        headers: dict[str, str] = {}
        if span.get_span_context().is_valid:
            propagate.inject(headers)
        yield headers
