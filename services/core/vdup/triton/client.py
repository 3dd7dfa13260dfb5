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

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from vdup.errors import Unavailable, VdupError
from vdup.features.preprocess import ModelInputs, assemble, sha256_of
from vdup.features.types import Thumbnails, VideoFeatures
from vdup.triton.model_support import parse_error

OUTPUTS = (
    "TIMESTAMPS",
    "BOX",
    "META",
    "EMBEDDING",
    "AUDIO_EMBEDDING",
    "THUMBNAILS",
    "THUMB_TIMES",
)
RETRY_AFTER_S = 5
#: A call to a server that never answers is cut by gRPC after this long (at least), s.
HARD_DEADLINE_MIN_S = 600.0
#: ... or this multiple of ``timeout_s`` when that is longer.
HARD_DEADLINE_FACTOR = 10


class TritonExtractor:
    """``Extractor`` over a Triton server's gRPC endpoint ``url`` (``host:port``).

    timeout_s: how long one extraction may take, s. Past it ``extract`` raises ``Unavailable``
    but does not cancel the call: the server finishes it and the answer is dropped. Cancelling
    would be cleaner, yet Triton up to 24.12 can crash (SIGSEGV) when a gRPC call is cancelled
    just as its response is sent (triton-inference-server/server#7368, fixed by #7840), and
    a crash costs every call in flight. A hard gRPC deadline (:attr:`hard_deadline_s`, at least
    10 minutes) still bounds a call to a wedged server. Thread-safe: one channel serves
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
        self._pending: set[_Call] = set()
        self._lock = threading.Condition()

    @property
    def hard_deadline_s(self) -> float:
        return max(HARD_DEADLINE_MIN_S, HARD_DEADLINE_FACTOR * self.timeout_s)

    def ready(self) -> bool:
        """True when the server and ``model`` answer ready within 2 s."""
        try:
            return bool(
                self._client.is_server_ready(client_timeout=2)
                and self._client.is_model_ready(self.model, client_timeout=2)
            )
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
                result = self._infer(request, headers)
        except InferenceServerException as exc:
            error = self._error(exc)
            if isinstance(error, Unavailable):
                BACKEND_FAILURES.labels("triton", "infer").inc()
            raise error from None
        except Unavailable:
            BACKEND_FAILURES.labels("triton", "infer").inc()
            raise
        finally:
            BACKEND_REQUEST_DURATION.labels("triton", "infer").observe(time.perf_counter() - t0)
        try:
            return features_from_outputs(
                {name: result.as_numpy(name) for name in OUTPUTS}, sha256_of(data)
            )
        except (AssertionError, ValueError, TypeError, AttributeError, IndexError) as exc:
            BACKEND_FAILURES.labels("triton", "infer").inc()
            raise Unavailable(
                f"feature extraction is unavailable: model {self.model!r} at {self.url} answered "
                f"outputs this client does not understand ({type(exc).__name__})",
                retry_after_s=RETRY_AFTER_S,
            ) from None

    def close(self, wait_s: float | None = None) -> None:
        """Close the channel once the calls still running have ended, waiting at most ``wait_s``
        (default: the hard deadline): closing would cancel them, which this class avoids."""
        wait_s = self.hard_deadline_s if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        with self._lock:
            while self._pending and time.monotonic() < deadline:
                self._lock.wait(max(0.0, deadline - time.monotonic()))
        self._client.close()

    def _infer(self, request, headers: dict[str, str]):
        call = _Call(self)
        with self._lock:
            self._pending.add(call)
        try:
            call.context = self._client.async_infer(
                self.model,
                [request],
                call.done,
                outputs=self._outputs,
                client_timeout=self.hard_deadline_s,
                headers=headers or None,
            )
        except BaseException:
            call.forget()
            raise
        if not call.finished.wait(self.timeout_s):
            raise Unavailable(
                f"feature extraction is unavailable: Triton at {self.url} did not answer within "
                f"{self.timeout_s:g} s",
                retry_after_s=RETRY_AFTER_S,
            )
        if call.error is not None:
            raise call.error
        return call.result

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
        return Unavailable(
            f"feature extraction is unavailable: {reason}", retry_after_s=RETRY_AFTER_S
        )


class _Call:
    """One call in flight. The extractor keeps it (and so gRPC's future, whose garbage
    collection would cancel the call) until the answer arrives."""

    def __init__(self, owner: TritonExtractor) -> None:
        self.owner = owner
        self.context = None
        self.result = None
        self.error = None
        self.finished = threading.Event()

    def done(self, result, error) -> None:
        self.result, self.error = result, error
        self.finished.set()
        self.forget()

    def forget(self) -> None:
        with self.owner._lock:
            self.owner._pending.discard(self)
            self.owner._lock.notify_all()


def features_from_outputs(outputs: dict[str, np.ndarray], sha256: str) -> VideoFeatures:
    """``ensemble_model`` outputs -> ``VideoFeatures`` via ``assemble``.

    EMBEDDING float32 [m, 2, 512] (per image: plain, mirrored) becomes the [2m, 512] that
    ``assemble`` expects (the images' descriptors, then their mirrors'). The images never leave
    Triton, so the ``ModelInputs`` carries an empty [m, 0, 0, 3] stand-in: ``assemble`` only
    counts them. THUMBNAILS bytes [k] (JPEG files) and THUMB_TIMES float32 [k] s become
    ``VideoFeatures.thumbnails``.
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
        thumbnails=Thumbnails(
            outputs["THUMB_TIMES"].astype(np.float32, copy=False).reshape(-1),
            tuple(bytes(j) for j in outputs["THUMBNAILS"].reshape(-1)),
        ),
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
